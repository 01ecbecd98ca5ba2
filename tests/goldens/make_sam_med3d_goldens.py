"""Make tests/goldens/sam_med3d_parity.npz from the OFFICIAL SAM-Med3D code (run outside the project).

    python tests/goldens/make_sam_med3d_goldens.py /path/to/SAM-Med3D-checkout [SHARED_DATA_DIR]

Also makes tests/goldens/sam_med3d_crops.npz when SHARED_DATA_DIR (../shared/data) is given: the official
TorchIO preprocessing (`data_preprocess`) and back-mapping (`data_postprocess`) of utils/infer_utils.py on the
real CT of totalsegmentator_example for three classes, and on the same CT flipped to LAS (so ToCanonical acts);
and tests/goldens/sam_med3d_end_to_end.npz: the official `validate_paired_img_gt` on that CT (needs PyPI medim
0.1.2 in the scratch environment).

The checkout is uni-medical/SAM-Med3D (made at f3de1fa1); its `segment_anything` package is imported from there
without running its `__init__` (which needs the repo's `utils`), and `sam_model_registry3D['vit_b_ori']`
builds the network. Weights: the parity recipe of docs/add-a-model.md (parity_recipe.py beside this script, no project
code), loaded with strict=True. Calls mirror utils/infer_utils.py `sam_model_infer`:
image_encoder once; prompt_encoder(points=[coords, labels], boxes=None, masks=prev_low_res) with a zero
32^3 previous mask on the first pass (mask_downscaling, not no_mask_embed); mask_decoder(...,
multimask_output=False). A second pass feeds the accumulated points (one negative) and the first pass's
logits, as the official loop does. Nothing from the checkout is copied into the project.
PyPI medim 0.1.2 (`medim.create_model("SAM-Med3D")`, what the current official scripts build) gives the same
outputs bit for bit (checked when these goldens were made).
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

from parity_recipe import parity_weights  # tests/goldens/parity_recipe.py, beside this script

SEED = 1
FIRST_POINTS = [[40.0, 70.0, 90.0]]
FIRST_LABELS = [1]
SECOND_POINTS = [[40.0, 70.0, 90.0], [60.0, 50.0, 30.0]]
SECOND_LABELS = [1, 0]
EMBEDDING_CHANNELS = slice(None, None, 8)  # image-embedding subsample kept in the golden


def official_model(checkout: Path) -> torch.nn.Module:
    package = types.ModuleType("segment_anything")
    package.__path__ = [str(checkout / "segment_anything")]
    sys.modules["segment_anything"] = package
    build = importlib.import_module("segment_anything.build_sam3D")
    return build.sam_model_registry3D["vit_b_ori"](checkpoint=None)



def decode(model, embedding, points, labels, prev_low_res):
    sparse, dense = model.prompt_encoder(points=[torch.tensor([points]), torch.tensor([labels])], boxes=None,
                                         masks=prev_low_res)
    low_res, iou = model.mask_decoder(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                                      sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                      multimask_output=False)
    return sparse, low_res, iou


CROP_CLASSES = (5, 2, 7)  # liver, kidney_right, pancreas (TotalSegmentator label values)
END_TO_END_CLASS = 5


def official_crops(checkout: Path, data: Path, out: Path) -> None:
    """Crop geometry, normalised-image statistics and subsample, cropped label and its back-mapping."""
    import nibabel as nib
    import torchio

    print(f"torchio {torchio.__version__}")

    sys.modules.setdefault("edt", types.ModuleType("edt"))  # imported by infer_utils for the RITM clicks only
    sys.path.insert(0, str(checkout))
    infer = importlib.import_module("utils.infer_utils")
    folder = data / "totalsegmentator_example"
    scratch = Path(tempfile.mkdtemp(prefix="sam_med3d_las_"))
    cases = {"ras": (folder / "ct.nii.gz", folder / "seg_total.nii.gz")}
    flipped = []
    for name in ("ct.nii.gz", "seg_total.nii.gz"):
        image = nib.load(folder / name)
        las = image.slicer[::-1]  # first axis reversed: an LAS image of the same anatomy
        nib.save(las, scratch / name)
        flipped.append(scratch / name)
    cases["las"] = tuple(flipped)
    arrays = {}
    for case, (image_path, label_path) in cases.items():
        for value in CROP_CLASSES:
            subject, meta = infer.get_subject_and_meta_info(str(image_path), str(label_path))
            roi_image, roi_label, meta = infer.data_preprocess(subject, meta, category_index=value,
                                                               target_spacing=(1.5, 1.5, 1.5), crop_size=128)
            back_zyx = infer.data_postprocess(roi_label[0, 0].numpy().astype(np.uint8), meta)
            key = f"{case}_{value}"
            arrays[f"{key}_affine"] = meta["roi_subject_affine"]
            arrays[f"{key}_image_sub"] = roi_image[0, 0, ::8, ::8, ::8].numpy()
            arrays[f"{key}_image_mean"] = float(roi_image.double().mean())
            arrays[f"{key}_image_std"] = float(roi_image.double().std())
            arrays[f"{key}_label_bits"] = np.packbits(roi_label[0, 0].numpy() > 0)
            arrays[f"{key}_native_bits"] = np.packbits(back_zyx.transpose(2, 1, 0) > 0)
            # a mask with edges everywhere: native voxel centres halfway between crop voxels show the tie-breaking
            noise = np.random.default_rng(value).random((128, 128, 128)) > 0.5
            arrays[f"{key}_noise_native_bits"] = np.packbits(infer.data_postprocess(noise.astype(np.uint8), meta)
                                                             .transpose(2, 1, 0) > 0)
    np.savez_compressed(out, classes=np.array(CROP_CLASSES), **arrays)
    print(f"wrote {out}")


def official_end_to_end(checkout: Path, data: Path, out: Path) -> None:
    """The official `validate_paired_img_gt` (medim_val_single.py's path: PyPI medim 0.1.2's model, as the repo's
    MaskDecoder3D needs `multimask_output`, which infer_utils does not pass) with parity weights on the real CT,
    target the liver alone, one click, seed 233: the native prediction and the click it sampled."""
    import medim
    import nibabel as nib

    sys.modules.setdefault("edt", types.ModuleType("edt"))
    sys.path.insert(0, str(checkout))
    infer = importlib.import_module("utils.infer_utils")
    model = medim.create_model("SAM-Med3D", pretrained=False)
    model.load_state_dict(parity_weights(model.state_dict()), strict=True)
    model.eval()
    folder = data / "totalsegmentator_example"
    scratch = Path(tempfile.mkdtemp(prefix="sam_med3d_e2e_"))
    labels = nib.load(folder / "seg_total.nii.gz")
    liver = (np.asanyarray(labels.dataobj) == END_TO_END_CLASS).astype(np.uint8) * END_TO_END_CLASS
    nib.save(nib.Nifti1Image(liver, labels.affine, labels.header), scratch / "gt.nii.gz")
    clicks = []
    sampler = infer.random_sample_next_click

    def recording_sampler(prev_mask, gt_mask, method="random"):
        point, label = sampler(prev_mask, gt_mask, method)
        clicks.append([*point.flatten().tolist(), int(label)])
        return point, label

    infer.sam_model_infer.__defaults__ = (None, recording_sampler, None, 1)  # (roi_gt, prompt_generator, ...)
    infer.validate_paired_img_gt(model, str(folder / "ct.nii.gz"), str(scratch / "gt.nii.gz"),
                                 str(scratch / "pred.nii.gz"), num_clicks=1)
    prediction = np.asanyarray(nib.load(scratch / "pred.nii.gz").dataobj)
    np.savez_compressed(out, value=END_TO_END_CLASS, clicks=np.array(clicks),
                        native_bits=np.packbits(prediction == END_TO_END_CLASS), shape=np.array(prediction.shape))
    print(f"wrote {out}: clicks {clicks}, {int((prediction == END_TO_END_CLASS).sum())} voxels")


def main() -> None:
    checkout = Path(sys.argv[1])
    out = Path(__file__).with_name("sam_med3d_parity.npz")
    if len(sys.argv) > 2:
        official_crops(checkout, Path(sys.argv[2]), Path(__file__).with_name("sam_med3d_crops.npz"))
        official_end_to_end(checkout, Path(sys.argv[2]), Path(__file__).with_name("sam_med3d_end_to_end.npz"))
    torch.set_num_threads(2)
    model = official_model(checkout)
    model.load_state_dict(parity_weights(model.state_dict()), strict=True)
    model.eval()
    image = torch.randn((1, 1, 128, 128, 128), generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        embedding = model.image_encoder(image)
        sparse1, low1, iou1 = decode(model, embedding, FIRST_POINTS, FIRST_LABELS, torch.zeros(1, 1, 32, 32, 32))
        sparse2, low2, iou2 = decode(model, embedding, SECOND_POINTS, SECOND_LABELS, low1)
        dense_pe = model.prompt_encoder.get_dense_pe()
    np.savez_compressed(
        out, seed=SEED, embedding_channels_step=EMBEDDING_CHANNELS.step,
        first_points=np.array(FIRST_POINTS), first_labels=np.array(FIRST_LABELS),
        second_points=np.array(SECOND_POINTS), second_labels=np.array(SECOND_LABELS),
        embedding=embedding[0, EMBEDDING_CHANNELS].numpy(), dense_pe=dense_pe[0, ::16].numpy(),
        sparse1=sparse1[0].numpy(), low_res1=low1[0, 0].numpy(), iou1=iou1[0].numpy(),
        sparse2=sparse2[0].numpy(), low_res2=low2[0, 0].numpy(), iou2=iou2[0].numpy())
    print(f"wrote {out}: embedding std {embedding.std():.4f}, low_res1 range [{low1.min():.3f}, {low1.max():.3f}], "
          f"iou1 {iou1.flatten().tolist()}, iou2 {iou2.flatten().tolist()}")


if __name__ == "__main__":
    main()
