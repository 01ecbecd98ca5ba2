"""Make tests/goldens/segvol_points.npz from the OFFICIAL SegVol `select_points` (run outside the project).

    python tests/goldens/make_segvol_point_goldens.py /path/to/SegVol-checkout

The checkout is BAAI-DCAI/SegVol (made at 5768c97); `utils/monai_inferers_utils.py` is imported from it (it
needs torch and monai). For fixed labels (a blob on a zoom-out-sized grid's corner, a label with two voxels, an
empty one, a soft window map as the zoom-in windows see it), each with a seed: `torch.manual_seed(seed)`, then
`select_points(label, num_positive_extra, num_negative_extra)` as inference_demo.py:66 (3, 3) and
monai_inferers_utils.py:228 (defaults 4, 0) call it. The project draws with a local torch.Generator seeded the
same way; the test compares points and labels exactly. Nothing from the checkout is copied into the project.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

SEEDS = (0, 7, 2024)


def labels() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    blob = np.zeros((12, 40, 36), np.float32)
    blob[3:9, 10:30, 5:20] = rng.random((6, 20, 15)) > 0.3
    two = np.zeros((6, 8, 10), np.float32)
    two[0, 0, :2] = 1
    window = np.zeros((8, 16, 16), np.float32)
    window[2:4, 5:7, 5:9] = 1  # positive points upsampled (nearest): blocks of ones
    return {"blob": blob, "two": two, "empty": np.zeros((4, 5, 6), np.float32), "window": window}


CALLS = {"blob": (3, 3), "two": (3, 3), "empty": (3, 3), "window": (4, 0)}


def main(checkout: Path, out: Path) -> None:
    spec = importlib.util.spec_from_file_location("segvol_utils", checkout / "utils" / "monai_inferers_utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    arrays = {}
    for name, label in labels().items():
        arrays[f"label_{name}"] = label
        positive, negative = CALLS[name]
        for seed in SEEDS:
            torch.manual_seed(seed)
            points, point_labels = module.select_points(torch.from_numpy(label), num_positive_extra=positive,
                                                        num_negative_extra=negative)
            arrays[f"points_{name}_{seed}"] = points.numpy().astype(np.int64)
            arrays[f"labels_{name}_{seed}"] = point_labels.numpy().astype(np.int64)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).with_name("segvol_points.npz"))
