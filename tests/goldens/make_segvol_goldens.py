"""Parity goldens for SegVol from the official code (BAAI-DCAI/SegVol @ 5768c979), with the parity weights.

Run OUTSIDE the project's environment, in a scratch venv that has the README pins monai==0.9.0 and
transformers==4.18.0 on top of the shared torch (see tests/goldens/README.md for the exact recipe; SCRATCH: the
scratch folder, OFFICIAL: a checkout of BAAI-DCAI/SegVol):

    SCRATCH/venv/bin/python tests/goldens/make_segvol_goldens.py OFFICIAL

It builds the model as inference_demo.py does (test_mode=True), loads the parity weights (strict), runs the
official forward on a fixed seeded 32 x 256 x 256 image with a point, a box, a text, box+text, point+text prompt
and a batch of two texts (tiny tokenizer from tiny_clip.py), and writes subsamples of the image embedding, the text
embeddings, the low-resolution logits and the full-resolution logits to tests/goldens/segvol_parity.npz.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]
from tiny_clip import write_tiny_clip_tokenizer

from models.parity import load_parity_weights

ROI = (32, 256, 256)
POINTS = ([[10, 100, 120], [12, 130, 90], [20, 40, 200]], [1, 1, 0])  # (D, H, W) voxel indices, labels
BOX = [8, 64, 80, 24, 180, 200]  # (d0, h0, w0, d1, h1, w1), inclusive
TEXTS = ["liver", "left kidney"]
EMBED_SUB = (0, slice(None, None, 24), slice(None), slice(None, None, 2), slice(None, None, 2))
LOW_SUB = (slice(None), 0, slice(None, None, 2), slice(None, None, 4), slice(None, None, 4))
FULL_SUB = (slice(None), 0, slice(None, None, 4), slice(None, None, 16), slice(None, None, 16))


def golden_image() -> torch.Tensor:
    """The fixed input: seeded uniform noise plus a bright ellipsoid, (1, 1, 32, 256, 256) in [0, 1]."""
    rng = np.random.default_rng(20240601)
    d, h, w = np.ogrid[:ROI[0], :ROI[1], :ROI[2]]
    blob = ((d - 16) / 10.0) ** 2 + ((h - 120) / 60.0) ** 2 + ((w - 140) / 70.0) ** 2 < 1
    image = 0.5 * rng.random(ROI, dtype=np.float32) + 0.5 * blob
    return torch.from_numpy(image.astype(np.float32))[None, None]


def prompts() -> dict:
    """name -> (text, boxes, points) as the official forward takes them."""
    points = (torch.tensor([POINTS[0]], dtype=torch.float32), torch.tensor([POINTS[1]], dtype=torch.float32))
    box = torch.tensor([BOX], dtype=torch.float32)
    return {"point": (None, None, points), "box": (None, box, None), "text": (TEXTS[0], None, None),
            "box_text": (TEXTS[0], box, None), "point_text": (TEXTS[0], None, points), "texts": (TEXTS, None, None)}


def official_model(checkout: Path):
    """The official SegVol built as inference_demo.py builds it (test_mode=True) with the parity weights loaded
    strictly, on CPU (the official code's CUDA calls become no-ops). Needs SegVol's pinned environment."""
    sys.path.insert(0, str(Path(checkout).resolve()))
    torch.Tensor.cuda = lambda self, *a, **k: self
    from network.model import SegVol
    from segment_anything_volumetric import sam_model_registry

    torch.manual_seed(0)
    sam = sam_model_registry["vit"](args=argparse.Namespace(spatial_size=ROI, patch_size=(4, 16, 16)))
    model = SegVol(image_encoder=sam.image_encoder, mask_decoder=sam.mask_decoder, prompt_encoder=sam.prompt_encoder,
                   clip_ckpt=str(Path(checkout) / "config" / "clip"), roi_size=ROI, patch_size=(4, 16, 16),
                   test_mode=True)
    return load_parity_weights(model).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("official", type=Path, help="a checkout of BAAI-DCAI/SegVol")
    parser.add_argument("--out", type=Path, default=HERE / "segvol_parity.npz")
    args = parser.parse_args()
    import monai
    import transformers
    from transformers import CLIPTokenizer

    model = official_model(args.official)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, monai {monai.__version__}")
    tokenizer_dir = write_tiny_clip_tokenizer(args.out.parent / "_tiny_clip_tmp")
    model.text_encoder.tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))

    captured = {}
    model.image_encoder.register_forward_hook(lambda m, i, o: captured.__setitem__("tokens", o[0]))
    model.mask_decoder.register_forward_hook(lambda m, i, o: captured.__setitem__("low", o[0]))
    model.text_encoder.register_forward_hook(lambda m, i, o: captured.__setitem__("text", o))
    image = golden_image()
    out = {"image_sum": np.float64(image.double().sum())}
    with torch.no_grad():
        for name, (text, boxes, points) in prompts().items():
            logits = model(image, text=text, boxes=boxes, points=points)
            out[f"low_{name}"] = captured["low"][LOW_SUB].numpy()
            out[f"logits_{name}"] = logits[FULL_SUB].numpy()
            if name in ("text", "texts"):
                out[f"text_embedding_{name}"] = captured["text"].numpy()
        embedding = captured["tokens"].transpose(1, 2).reshape(1, 768, 8, 16, 16)
        out["image_embedding"] = embedding[EMBED_SUB].numpy()
    for name in TEXTS:
        out[f"ids_{name.replace(' ', '_')}"] = np.array(model.text_encoder.organ2tokens([name])["input_ids"][0])
    for f in tokenizer_dir.iterdir():
        f.unlink()
    tokenizer_dir.rmdir()
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB): "
          + ", ".join(f"{k} {v.shape}" for k, v in out.items()))


if __name__ == "__main__":
    main()
