"""Make the SAM ViT-B goldens from the OFFICIAL code (facebookresearch/segment-anything), outside the project.

Usage (see docs/add-a-model.md for the parity weights):
    python tests/goldens/make_sam_goldens.py /path/to/segment-anything-checkout tests/goldens/sam_vit_b_predictor.npz

The checkout's `sam_model_registry['vit_b']` gets the parity weights (strict) and its `SamPredictor` a fixed
seeded 48 x 64 grey uint8 slice (as RGB). Four `predict` rounds, multimask, the mask of the highest predicted IoU
kept as a caller does: a positive point; that point and a negative one with round 1's best low-res logits as
`mask_input`; a box alone; the box with both points and round 3's best low-res logits. Saved: the slice, the
prompts, each round's three IoUs, its best mask and a subsample of its best low-res logits.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from parity_recipe import parity_weights  # tests/goldens/parity_recipe.py, beside this script

POINTS = np.array([[30.0, 20.0], [5.0, 40.0]])  # (x, y)
LABELS = np.array([1, 0])
BOX = np.array([10.0, 8.0, 50.0, 36.0])         # (x0, y0, x1, y1)



def fixed_slice() -> np.ndarray:
    """A seeded 48 x 64 uint8 grey slice: smooth background, a bright rectangle, noise."""
    rng = np.random.default_rng(20251207)
    rows, cols = np.mgrid[0:48, 0:64]
    image = 90 + 40 * np.sin(cols / 9.0) * np.cos(rows / 7.0) + rng.normal(0, 10, (48, 64))
    image[12:32, 14:44] += 100
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a facebookresearch/segment-anything checkout (official code)")
    parser.add_argument("out", type=Path, help="output .npz")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    sys.path.insert(0, str(checkout))
    import segment_anything
    from segment_anything import SamPredictor, sam_model_registry

    assert Path(segment_anything.__file__).resolve().is_relative_to(checkout), segment_anything.__file__
    torch.set_num_threads(2)
    sam = sam_model_registry["vit_b"](checkpoint=None)
    sam.load_state_dict(parity_weights(sam.state_dict()), strict=True)
    sam.eval()
    image = fixed_slice()
    predictor = SamPredictor(sam)
    predictor.set_image(np.repeat(image[..., None], 3, axis=2), image_format="RGB")

    rounds = {
        "point": dict(point_coords=POINTS[:1], point_labels=LABELS[:1]),
        "refine": dict(point_coords=POINTS, point_labels=LABELS),
        "box": dict(box=BOX),
        "box_refine": dict(point_coords=POINTS, point_labels=LABELS, box=BOX),
    }
    feedback = {"refine": "point", "box_refine": "box"}
    out, best_low_res = {}, {}
    for name, prompt in rounds.items():
        mask_input = best_low_res[feedback[name]][None] if name in feedback else None
        masks, ious, low_res = predictor.predict(**prompt, mask_input=mask_input, multimask_output=True)
        best = int(np.argmax(ious))
        best_low_res[name] = low_res[best]
        out[f"{name}_ious"], out[f"{name}_mask"] = ious, masks[best]
        out[f"{name}_low_res_sub"] = low_res[best][::8, ::8]

    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, check=False,
                            text=True).stdout.strip() or "unknown (not a git checkout)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, image=image, points=POINTS, labels=LABELS, box=BOX, **out,
                        source=np.array(f"facebookresearch/segment-anything@{commit[:7]}, torch {torch.__version__}"))
    print(f"wrote {args.out}:", {name: out[f"{name}_ious"].round(4).tolist() for name in rounds},
          {name: int(out[f"{name}_mask"].sum()) for name in rounds})


if __name__ == "__main__":
    main()
