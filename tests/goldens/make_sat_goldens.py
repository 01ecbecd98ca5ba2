"""Make tests/goldens/sat_*.npz: outputs of the OFFICIAL SAT code (zhaoziheng/SAT) under parity weights.

Nothing of the official code is committed; this script imports it from a checkout given on the command line and
saves small arrays. Run it OUTSIDE the project, in a scratch environment with SAT's pins where they matter
(SCRATCH: any scratch folder outside the project; PROJECT_VENV: the project's virtual environment; OFFICIAL: a
checkout of zhaoziheng/SAT, as in tests/goldens/README.md):

    python3.11 -m venv SCRATCH/venv
    echo PROJECT_VENV/lib/python3.11/site-packages > SCRATCH/venv/lib/python3.11/site-packages/zz_shared.pth
    SCRATCH/venv/bin/pip install --no-deps transformers==4.21.3 positional_encodings==6.0.1 \
        tokenizers==0.13.3 huggingface_hub==0.10.1
    # transformers 4.21.3 asks for tokenizers<0.13, which has no Python 3.11 wheel: relax that one line of
    # SCRATCH/venv/lib/python3.11/site-packages/transformers/dependency_versions_table.py
    RANK=0 SCRATCH/venv/bin/python tests/goldens/make_sat_goldens.py OFFICIAL tests/goldens

(torch, numpy, scipy, einops and monai come from the shared environment through the .pth file; SAT's own copy
of dynamic-network-architectures is imported from the checkout, ahead of the PyPI one.)

What runs unmodified: `Maskformer` (vision backbone, pooling, projection, positional encoding, query decoder,
mask embedding), `Knowledge_Encoder` with SAT's `MyTokenizer` on a tiny WordPiece vocabulary, `split_3d` and
`compute_gaussian`. Patched around it: `AutoModel.from_pretrained` builds MPNet from BioLORD-2023-C's config
(no download; the parity weights replace every weight anyway) and `torch.cuda.current_device` returns the CPU.
The window is 96 x 64 x 64 (the constructor takes any multiple of 32) so the forward runs in seconds on a CPU.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from parity_recipe import parity_weights  # tests/goldens/parity_recipe.py, beside this script

WINDOW = [96, 64, 64]
BATCH = 2
IMAGE_SEED = 1234
LOGIT_STRIDE = 7
PROMPTS = ["liver", "Left Kidneys", "lumbar vertebrae 1 (l1)", "spleen", " ".join(["left kidney"] * 200)]
MODALITIES = [0, 1, 3, 0, 2]  # ct, mri, pet, ct, us
SEG_QUERIES = 3  # the first three prompts' embeddings are the segmentation queries
AXIS_LENGTHS = {288: range(1, 1001), 96: range(1, 401)}  # split_3d along one axis, for every length
ENGINE_VOLUME = (120, 70, 40)  # 2 x 2 x 1 windows of WINDOW, the last axis padded
ENGINE_SEED = 4321
ENGINE_STRIDE = 2  # masks every 2nd voxel, probabilities every 4th
SPLIT_SHAPES = [(353, 283, 30), (366, 303, 30), (300, 300, 100), (288, 288, 96), (100, 90, 40), (577, 433, 97), (145, 289, 49),
                (144, 144, 48), (433, 144, 193)]
VOCAB = ["<s>", "<pad>", "</s>", "<unk>", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "liver", "left", "kidney", "##s",
         "l", "1", "(", ")", "ver", "##te", "##bra", "##e", "lumbar", "<mask>"]
BIOLORD_CONFIG = dict(vocab_size=30527, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                      attention_probs_dropout_prob=0.1, max_position_embeddings=514, initializer_range=0.02,
                      layer_norm_eps=1e-5, relative_attention_num_buckets=32, pad_token_id=1, bos_token_id=0,
                      eos_token_id=2)



def text_goldens(checkout: Path) -> dict[str, np.ndarray]:
    import transformers
    from model import text_tower
    from model.knowledge_encoder import Knowledge_Encoder
    from transformers import MPNetConfig, MPNetModel

    text_tower.AutoModel = type("AutoModel", (), {"from_pretrained": staticmethod(
        lambda name: MPNetModel(MPNetConfig(**BIOLORD_CONFIG)))})
    torch.cuda.current_device = lambda: torch.device("cpu")
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "vocab.txt").write_text("\n".join(VOCAB) + "\n")
        Path(folder, "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "MPNetTokenizer",
                                                                      "do_lower_case": True}))
        encoder = Knowledge_Encoder(biolord_checkpoint=folder)
        encoder.load_state_dict(parity_weights(encoder.state_dict()), strict=True)
        encoder.eval()
        tokens = encoder.text_tower.tokenizer.tokenize(PROMPTS)
        with torch.no_grad():
            embeddings = encoder(PROMPTS, torch.tensor(MODALITIES))
    print(f"text: transformers {transformers.__version__}, {type(encoder.text_tower.tokenizer.tokenizer).__name__}")
    return {"vocab": np.array(VOCAB), "prompts": np.array(PROMPTS), "modalities": np.array(MODALITIES),
            "input_ids": tokens["input_ids"].numpy(), "attention_mask": tokens["attention_mask"].numpy(),
            "text_embeddings": embeddings.numpy()}


def network_goldens(queries: torch.Tensor) -> tuple[dict[str, np.ndarray], torch.nn.Module]:
    from model.maskformer import Maskformer

    network = Maskformer("UNET", image_size=WINDOW, patch_size=[32, 32, 32], deep_supervision=False)
    network.load_state_dict(parity_weights(network.state_dict()), strict=True)
    network.eval()
    image = torch.randn([BATCH, 3, *WINDOW], generator=torch.Generator().manual_seed(IMAGE_SEED))
    with torch.no_grad():
        tokens, pos, pixels = network.vision_backbone_forward(image)
        decoded, _ = network.transformer_decoder(queries.unsqueeze(1).repeat(1, BATCH, 1), tokens, pos=pos)
        logits = network.infer_forward([queries], tokens, pos, pixels)
    s = LOGIT_STRIDE
    return {"window": np.array(WINDOW), "image_seed": np.array(IMAGE_SEED), "queries": queries.numpy(),
            "image_tokens": tokens.numpy(), "pos_embedding": pos.numpy(), "decoded_queries": decoded.numpy(),
            "logit_stride": np.array(s), "logits_strided": logits[:, :, ::s, ::s, ::s].numpy(),
            "logits_shape": np.array(logits.shape)}, network


def engine_goldens(network: torch.nn.Module, queries: torch.Tensor, shift: torch.Tensor) -> dict[str, np.ndarray]:
    """The official `inference()` loop end to end on a small volume with the network's small window: SAT's
    windows, padding, channel repeat, batches of 2, Gaussian blending, average, threshold.

    Under parity weights nearly every logit is positive (GELU and LeakyReLU outputs dotted), so the masks would be
    all foreground; each query's logits are shifted by `shift` (their median on the network golden) to make the
    blending and the threshold matter. Patched around the loop, nothing inside it: its Gaussian is SAT's
    `compute_gaussian` for this window (the loop hard-codes 288 x 288 x 96), and the two accumulators it
    allocates with `torch.zeros` are recorded, so the probabilities it thresholds are saved too."""
    import evaluate.inference_engine as engine
    import nibabel as nib
    from data.inference_dataset import Inference_Dataset, split_3d
    from einops import repeat

    class Shifted(torch.nn.Module):
        def forward(self, queries, image_input):
            return network(queries, image_input) - shift[None, :, None, None, None]

    class Queries(torch.nn.Module):
        def forward(self, names, modality):
            return queries

    accumulators = []

    class RecordingTorch:
        def __getattr__(self, name):
            return getattr(torch, name)

        def zeros(self, *args, **kwargs):
            accumulators.append(torch.zeros(*args, **kwargs))
            return accumulators[-1]

    dataset = Inference_Dataset.__new__(Inference_Dataset)
    dataset.patch_size, dataset.batch_size = WINDOW, 2
    image = torch.randn(ENGINE_VOLUME, generator=torch.Generator().manual_seed(ENGINE_SEED))[None]
    patches, spans = split_3d(image, crop_size=WINDOW)
    batches, batch_spans = [], []
    for first in range(0, len(patches), 2):
        patch = dataset._pad_if_necessary(torch.stack(patches[first:first + 2]))
        batches.append(repeat(patch, "b c h w d -> b (c r) h w d", r=3))
        batch_spans.append(spans[first:first + 2])
    labels = [f"q{i}" for i in range(len(queries))]
    batch = {"dataset_name": "golden", "sample_id": "case", "batched_patches": batches,
             "batched_y1y2_x1x2_z1z2": batch_spans, "split_queries": [labels], "split_n1n2": [[0, len(labels)]],
             "labels": labels, "modality": "ct", "chwd": image.shape, "image": image}
    official_gaussian = engine.compute_gaussian
    engine.compute_gaussian = lambda tile, *args, **kwargs: official_gaussian(tuple(WINDOW), *args, **kwargs)
    engine.torch = RecordingTorch()
    with tempfile.TemporaryDirectory() as folder:
        jsonl = Path(folder, "golden.jsonl")
        jsonl.write_text("{}\n")
        dataset.jsonl_file = str(jsonl)
        (Path(folder) / "out").mkdir()
        try:
            engine.inference(Shifted(), Queries(), torch.device("cpu"), dataset, [batch], str(Path(folder) / "out"))
        finally:
            engine.compute_gaussian, engine.torch = official_gaussian, torch
        masks = np.stack([np.asarray(nib.load(Path(folder, "out", "golden", "seg_case", f"{label}.nii.gz"))
                                     .dataobj) for label in labels]) > 0.5
    prediction, accumulation = accumulators[:2]
    probabilities = (prediction / accumulation).numpy()
    assert np.array_equal(probabilities > 0.5, masks)
    print("engine: windows", spans, "foreground fractions", masks.mean(axis=(1, 2, 3)))
    s = ENGINE_STRIDE
    return {"engine_volume": np.array(ENGINE_VOLUME), "engine_seed": np.array(ENGINE_SEED),
            "engine_shift": shift.numpy(), "engine_windows": np.array(spans),
            "engine_stride": np.array(s), "engine_masks_strided": np.packbits(masks[:, ::s, ::s, ::s].ravel()),
            "engine_probabilities_strided": probabilities[:, ::2 * s, ::2 * s, ::2 * s]}


def inference_goldens() -> dict[str, np.ndarray]:
    from data.inference_dataset import split_3d
    from evaluate.inference_engine import compute_gaussian

    out = {"split_shapes": np.array(SPLIT_SHAPES)}
    for size, lengths in AXIS_LENGTHS.items():  # 288: along the first axis; 96: along the last
        axis = 0 if size == 288 else 2
        rows = []
        for n in lengths:
            shape = (n, 1, 1) if axis == 0 else (1, 1, n)
            _, windows = split_3d(torch.zeros((1, *shape), dtype=torch.uint8), crop_size=[288, 288, 96])
            spans = [(w[2 * axis], w[2 * axis + 1]) for w in windows]
            rows.append(spans + [(-1, -1)] * (8 - len(spans)))
        out[f"axis_{size}"] = np.array(rows, dtype=np.int16)  # [length - 1, window, (start, stop)], -1 = none
    for i, shape in enumerate(SPLIT_SHAPES):
        _, windows = split_3d(torch.zeros((1, *shape), dtype=torch.uint8), crop_size=[288, 288, 96])
        out[f"split_{i}"] = np.array(windows)
    gaussian = compute_gaussian((288, 288, 96))
    out["gaussian_dtype"] = np.array(str(gaussian.dtype))
    out["gaussian_strided"] = gaussian[::8, ::8, ::4]
    out["gaussian_axes"] = np.stack([gaussian[:, 144, 48], gaussian[144, :, 48]])
    out["gaussian_depth"] = gaussian[144, 144, :]
    out["gaussian_corner"] = gaussian[:4, :4, :4]
    out["gaussian_sum"] = np.array(gaussian.astype(np.float64).sum())
    return out


def main() -> None:
    checkout, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2] if len(sys.argv) > 2 else "tests/goldens")
    sys.path[:0] = [str(checkout), str(checkout / "model" / "dynamic-network-architectures-main")]
    torch.set_num_threads(2)
    text = text_goldens(checkout)
    queries = torch.from_numpy(text["text_embeddings"][:SEG_QUERIES])
    network, official = network_goldens(queries)
    np.savez_compressed(out / "sat_text.npz", **text)
    shift = torch.from_numpy(np.median(network["logits_strided"], axis=(0, 2, 3, 4)))
    np.savez_compressed(out / "sat_network.npz", **network, **engine_goldens(official, queries, shift))
    np.savez_compressed(out / "sat_inference.npz", **inference_goldens())
    for name in ("sat_text", "sat_network", "sat_inference"):
        print(name, (out / f"{name}.npz").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
