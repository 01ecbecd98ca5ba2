"""SA-Med2D-20M-style 2D data (SAM-Med2D demo) read into cases the scorer takes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from bench.data.sammed2d import mask_name, read_cases, read_index
from protocols.case import evaluate_case


def test_test_split_matches_its_index_and_an_independent_png_reader(sammed2d_demo):
    entries = json.loads((sammed2d_demo / "label2image_test.json").read_text())
    cases = list(read_cases(sammed2d_demo, "test"))
    assert sum(len(case.masks) for case in cases) == len(entries) == 11
    assert {case.case_id for case in cases} == {image.split("/")[-1][:-4] for image in entries.values()}
    for case in cases:
        assert case.spacing == (1.0, 1.0)
        assert case.plane().shape == case.image.shape[:2]
        for name, mask in case.masks.items():
            raw = sitk.GetArrayFromImage(sitk.ReadImage(str(case.mask_paths[name])))
            assert mask.dtype == bool and mask.shape == raw.shape
            np.testing.assert_array_equal(mask, raw == 255)
            assert f"data_demo/masks/{case.case_id}_{name}.png" in entries


def test_train_split_reads_image_to_masks(sammed2d_demo):
    index = json.loads((sammed2d_demo / "image2label_train.json").read_text())
    cases = {case.case_id: case for case in read_cases(sammed2d_demo, "train")}
    assert {name: len(case.masks) for name, case in cases.items()} == {
        image.split("/")[-1][:-4]: len(masks) for image, masks in index.items()}
    assert "liver_000" in cases["amos_0006_90"].masks


def test_instances_merge_into_classes(sammed2d_demo):
    case = next(case for case in read_cases(sammed2d_demo, "test") if "hip_right_001" in case.masks)
    merged = case.by_class()
    np.testing.assert_array_equal(merged["hip_right"], case.masks["hip_right_000"] | case.masks["hip_right_001"])
    assert "hip_right_000" not in merged and merged["hip_right"].sum() > case.masks["hip_right_000"].sum()


def test_cases_score_in_2d(sammed2d_demo):
    case = next(read_cases(sammed2d_demo, "test"))
    shifted = {name: np.roll(mask, 3, axis=1) for name, mask in case.masks.items()}
    scores = evaluate_case(shifted, case.masks, case.spacing, case.classes())
    assert [score.class_name for score in scores] == list(case.masks)
    for score in scores:
        ref, pred = case.masks[score.class_name], shifted[score.class_name]
        assert score.dsc == pytest.approx(2 * (ref & pred).sum() / (ref.sum() + pred.sum()))
        assert 0 < score.nsd < 1


def test_mask_names_drop_the_image_stem(tmp_path):
    assert mask_name(tmp_path / "s0619_32_hip_right_001.png", "s0619_32") == "hip_right_001"
    assert mask_name(tmp_path / "other.png", "s0619_32") == "other"


def _copy_demo(sammed2d_demo, tmp_path):
    root = tmp_path / "data_demo"
    shutil.copytree(sammed2d_demo, root)
    return root


def test_bad_data_is_a_one_line_error_naming_the_file(sammed2d_demo, tmp_path):
    root = _copy_demo(sammed2d_demo, tmp_path)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        read_index(root, "val")
    mask = next((root / "masks").glob("amos_0004_75_liver_000.png"))
    sitk.WriteImage(sitk.GetImageFromArray(np.full((512, 512), 128, np.uint8)), str(mask))
    with pytest.raises(ValueError, match="amos_0004_75_liver_000.png: a mask must hold 0/1 or 0/255"):
        list(read_cases(root, "test"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((5, 5), np.uint8)), str(mask))
    with pytest.raises(ValueError, match="amos_0004_75_liver_000.png: mask shape \\(5, 5\\) differs"):
        list(read_cases(root, "test"))
    mask.unlink()
    with pytest.raises(ValueError, match="label2image_test.json: data_demo/masks/amos_0004_75_liver_000.png does not"):
        read_index(root, "test")
    (root / "image2label_train.json").write_text("{not json")
    with pytest.raises(ValueError, match="image2label_train.json: not valid JSON"):
        read_index(root, "train")
