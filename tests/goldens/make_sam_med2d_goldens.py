"""Make the SAM-Med2D parity goldens from the OFFICIAL code (OpenGVLab/SAM-Med2D), outside the project.

Usage (a scratch environment, not the project's; see docs/add-a-model.md for the parity weights):
    python tests/goldens/make_sam_med2d_goldens.py /path/to/SAM-Med2D-checkout tests/goldens/sam_med2d_parity.npz

The official model (`sam_model_registry['vit_b']` with image_size 256, encoder_adapter True, as test.py builds it)
gets the parity weights (derived from key names alone, loaded strictly) and a fixed seeded 256 x 256 grey image
normalised as its DataLoader does (SAM pixel mean/std in float64). Three prompt rounds, each decoded as
test.py's prompt_and_decoder does (multimask): one positive point without a previous mask; then that point plus
a negative one with the best first-round mask fed back as sigmoid probabilities (test.py generate_point); a box
alone. Saved: the input image, a subsample of the image embedding, all three low-res logits and IoU predictions
of every round. Nothing from the official code is saved.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from parity_recipe import parity_weights  # tests/goldens/parity_recipe.py, beside this script

PIXEL_MEAN = np.array([123.675, 116.28, 103.53])
PIXEL_STD = np.array([58.395, 57.12, 57.375])
POINT = [[100.0, 128.0]]
NEGATIVE = [[30.0, 30.0]]
BOX = [60.0, 88.0, 141.0, 169.0]



def fixed_image() -> np.ndarray:
    """A seeded 256 x 256 uint8 grey slice: smooth background, a bright disk, noise."""
    rng = np.random.default_rng(20251125)
    rows, cols = np.mgrid[0:256, 0:256]
    image = 100 + 60 * np.sin(cols / 17.0) * np.cos(rows / 23.0) + rng.normal(0, 12, (256, 256))
    image[(rows - 128) ** 2 + (cols - 100) ** 2 < 40 ** 2] += 110
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def decode(model, embedding, points=None, boxes=None, masks=None):
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=masks)
        return model.mask_decoder(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                                  sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                  multimask_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="an OpenGVLab/SAM-Med2D checkout (official code)")
    parser.add_argument("out", type=Path, help="output .npz")
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout.resolve()))
    import segment_anything
    from segment_anything import sam_model_registry  # the checkout's, not PyPI's
    assert Path(segment_anything.__file__).resolve().is_relative_to(args.checkout.resolve()), segment_anything.__file__
    torch.set_num_threads(2)
    model = sam_model_registry["vit_b"](argparse.Namespace(image_size=256, encoder_adapter=True, sam_checkpoint=None))
    model.load_state_dict(parity_weights(model.state_dict()), strict=True)
    model.eval()

    image = fixed_image()
    normalised = (np.repeat(image[..., None], 3, axis=2).astype(np.float64) - PIXEL_MEAN) / PIXEL_STD
    x = torch.from_numpy(normalised).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        embedding = model.image_encoder(x)

    point = (torch.tensor([POINT]), torch.tensor([[1]]))
    low1, iou1 = decode(model, embedding, points=point)
    best = int(iou1[0].argmax())
    both = (torch.tensor([POINT + NEGATIVE]), torch.tensor([[1, 0]]))
    low2, iou2 = decode(model, embedding, points=both, masks=torch.sigmoid(low1[:, best:best + 1]))
    low3, iou3 = decode(model, embedding, boxes=torch.tensor([BOX]))

    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True, check=False,
                            text=True).stdout.strip() or "unknown (not a git checkout)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, image=image, point=np.array(POINT), negative=np.array(NEGATIVE), box=np.array(BOX),
        embedding_shape=np.array(embedding.shape), embedding_sub=embedding[0, ::4, ::2, ::2].numpy(),
        point_low_res=low1.numpy(), point_iou=iou1.numpy(),
        refine_low_res=low2.numpy(), refine_iou=iou2.numpy(),
        box_low_res=low3.numpy(), box_iou=iou3.numpy(),
        source=np.array(f"OpenGVLab/SAM-Med2D@{commit}, torch {torch.__version__}"))
    print(f"wrote {args.out}: embedding {tuple(embedding.shape)}, IoU point {iou1.numpy().round(4)}, "
          f"refine {iou2.numpy().round(4)}, box {iou3.numpy().round(4)}")


if __name__ == "__main__":
    main()
