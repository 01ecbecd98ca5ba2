"""Make tests/goldens/sam_med3d_paper.npz from the OFFICIAL paper-era SAM-Med3D code (run outside the project).

    python tests/goldens/make_sam_med3d_paper_goldens.py /path/to/SAM-Med3D-at-b5927c7 SHARED_DATA_DIR [LIBS]

The checkout is uni-medical/SAM-Med3D at b5927c7 (validation.py and utils/ of the paper era); LIBS is a folder
holding the PyPI packages `edt` and `prefetch_generator` its modules import (appended to sys.path, so the
environment's numpy stays first). Two goldens:
- loader: the real CT of totalsegmentator_example (RAS) and the same CT stored in LAS voxel order, two classes,
  prepared as the paper-era scripts do (utils/prepare_data_from_nnUNet.py `resample_nii`: 1.5 mm, image linear,
  label nearest then binarised), in a `ct_*` folder, then read by `Dataset_Union_ALL_Val` (identity affine,
  `tio.Clamp(-1000, 1000)`) with validation.py's transform (ToCanonical, CropOrPad(mask_name='label', 128));
  kept: every 4th voxel of the image crop and the label crop's bits.
- clicks: the official click generators (`get_next_click3D_torch_ritm`, `get_next_click3D_torch_2`) fed what
  validation.py:274 feeds them, the trilinear-upsampled low-res logits, for fixed logits (+10 in a cube, +0.3 in a
  slab beside it, -10 elsewhere) and the reference sigmoid(logits) > 0.5; 40 seeds each (np.random.seed), the
  points and labels kept.
Nothing from the checkout is copied into the project.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
import torchio as tio

CLASSES = (5, 4)  # values in seg_total.nii.gz (as in make_sam_med3d_goldens.py)
SEEDS = range(40)


def low_res_logits() -> torch.Tensor:
    logits = torch.full((1, 1, 32, 32, 32), -10.0)
    logits[..., 8:16, 8:16, 8:16] = 10.0
    logits[..., 16:22, 8:16, 8:16] = 0.3
    return logits


def _module(checkout: Path, relative: str, name: str):
    spec = importlib.util.spec_from_file_location(name, checkout / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _las(image: nib.Nifti1Image) -> nib.Nifti1Image:
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = image.shape[0] - 1
    return nib.Nifti1Image(np.asanyarray(image.dataobj)[::-1].copy(), image.affine @ flip)


def _resample_nii(checkout: Path):
    """`resample_nii` of utils/prepare_data_from_nnUNet.py alone (the file runs its conversion on import)."""
    import ast

    tree = ast.parse((checkout / "utils" / "prepare_data_from_nnUNet.py").read_text())
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "resample_nii")
    namespace = {"tio": tio}
    exec(compile(ast.Module(body=[function], type_ignores=[]), "prepare_data_from_nnUNet.py", "exec"), namespace)
    return namespace["resample_nii"]


def loader_goldens(checkout: Path, data: Path, arrays: dict) -> None:
    resample_nii = _resample_nii(checkout)
    loader = _module(checkout, "utils/data_loader.py", "data_loader")
    ct, seg = nib.load(data / "ct.nii.gz"), nib.load(data / "seg_total.nii.gz")
    for orientation, (image, labels) in {"ras": (ct, seg), "las": (_las(ct), _las(seg))}.items():
        for value in CLASSES:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) / "ct_TS" / "TS"
                (folder / "imagesTs").mkdir(parents=True)
                (folder / "labelsTs").mkdir(parents=True)
                source_image, source_label = Path(tmp) / "image.nii.gz", Path(tmp) / "label.nii.gz"
                nib.save(image, source_image)
                nib.save(labels, source_label)
                target_image = folder / "imagesTs" / "case.nii.gz"
                resample_nii(str(source_image), str(target_image))
                reference = tio.ScalarImage(str(target_image))
                resample_nii(str(source_label), str(folder / "labelsTs" / "case.nii.gz"), n=value,
                                     reference_image=reference, mode="nearest")
                transform = tio.Compose([tio.ToCanonical(),
                                         tio.CropOrPad(mask_name="label", target_shape=(128, 128, 128))])
                dataset = loader.Dataset_Union_ALL_Val(paths=[str(folder)], mode="Val", data_type="Ts",
                                                       transform=transform, threshold=0, split_num=1, split_idx=0,
                                                       pcc=False)
                item = dataset[0]
            key = f"{orientation}_{value}"
            arrays[f"{key}_image_sub"] = item["image"][0, ::4, ::4, ::4].numpy().astype(np.float32)
            arrays[f"{key}_label_bits"] = np.packbits(item["label"][0].numpy().astype(bool).ravel())
            print(key, tuple(item["image"].shape), float(item["image"].min()), float(item["image"].max()))


def click_goldens(checkout: Path, arrays: dict) -> None:
    sys.modules.setdefault("edt", __import__("edt"))
    clicks = _module(checkout, "utils/click_method.py", "click_method")
    prev = F.interpolate(low_res_logits(), size=(128, 128, 128), mode="trilinear", align_corners=False)
    gt = (torch.sigmoid(prev) > 0.5).float()
    for name, method in (("ritm", clicks.get_next_click3D_torch_ritm), ("random", clicks.get_next_click3D_torch_2)):
        points, labels = [], []
        for seed in SEEDS:
            np.random.seed(seed)
            batch_points, batch_labels = method(prev, gt)
            points.append(batch_points[0].reshape(3).numpy())
            labels.append(int(batch_labels[0].reshape(-1)[0]))
        arrays[f"clicks_{name}_points"] = np.stack(points).astype(np.int64)
        arrays[f"clicks_{name}_labels"] = np.array(labels, np.int64)


def main(checkout: Path, data: Path, out: Path) -> None:
    arrays: dict = {}
    click_goldens(checkout, arrays)
    loader_goldens(checkout, data, arrays)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    if len(sys.argv) > 3:
        sys.path.append(sys.argv[3])
    main(Path(sys.argv[1]), Path(sys.argv[2]) / "totalsegmentator_example",
         Path(__file__).with_name("sam_med3d_paper.npz"))
