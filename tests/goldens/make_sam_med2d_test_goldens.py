"""Make the SAM-Med2D test.py goldens from the OFFICIAL code (OpenGVLab/SAM-Med2D), outside the project.

Usage (a scratch environment with the official script's imports: opencv-python-headless, albumentations,
scikit-image; see docs/add-a-model.md for the parity weights), run from a folder where `data_demo` is the demo data:
    python tests/goldens/make_sam_med2d_test_goldens.py /path/to/SAM-Med2D-checkout tests/goldens/sam_med2d_test.npz

Two parts, nothing from the official code saved:
- `utils.get_boxes_from_mask(mask, max_pixel=0)` (as DataLoader.py:78 calls it at test time) on fixed 256 x 256
  masks (a rectangle, two components, a diagonal, one corner pixel, an L at the far edges, two equal components):
  the (x0, y0, x1, y1) box each one gets.
- test.py's `main` itself on `data_demo` with the parity weights in a `{'model': ...}` checkpoint, on CPU, once in
  its default box mode and once in point mode with `--iter_point 5` (point_num becomes 1, test.py:41-42), numpy's
  global generator seeded before each run (the official script draws its points from it). Each call of
  `prompt_and_decoder` is recorded (points, labels, box, whether a mask was fed back) and each `SegMetrics` call
  (the per-mask IoU and Dice test.py averages), with the final mask at the original size, thresholded as
  metrics.py does (sigmoid > 0.5).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from parity_recipe import parity_weights  # tests/goldens/parity_recipe.py, beside this script

SIZE = 256



def box_masks() -> np.ndarray:
    """Fixed masks whose boxes pin the convention: (n, 256, 256) bool."""
    masks = np.zeros((6, SIZE, SIZE), bool)
    masks[0, 10:21, 30:41] = True                       # rows 10-20, columns 30-40
    masks[1, 50:90, 60:120] = True                      # the larger of two components
    masks[1, 200:210, 5:9] = True
    masks[2, np.arange(100, 140), np.arange(40, 80)] = True  # a diagonal: one 8-connected component
    masks[3, 0, 0] = True                               # one pixel in the corner
    masks[4, 230:256, 250:256] = True                   # an L touching the far edges
    masks[4, 250:256, 200:256] = True
    masks[5, 20:30, 20:30] = True                       # two equal components: the first in raster order
    masks[5, 100:110, 100:110] = True
    return masks


def run_test_py(test, args_list: list[str], seed: int) -> list[dict]:
    """Run test.py's main with `args_list`, recording every decoder call and metric of each mask."""
    cases: list[dict] = []
    decode, metrics = test.prompt_and_decoder, test.SegMetrics

    def recording_decode(args, batched_input, model, embeddings):
        if not cases or cases[-1].get("done"):
            cases.append({"calls": []})
        coords, labels = batched_input["point_coords"], batched_input["point_labels"]
        boxes = batched_input.get("boxes")
        cases[-1]["calls"].append({
            "points": None if coords is None else coords[0].cpu().numpy().tolist(),
            "labels": None if labels is None else labels[0].cpu().numpy().tolist(),
            "box": None if boxes is None else boxes.reshape(-1).cpu().numpy().tolist(),
            "mask_input": batched_input.get("mask_inputs") is not None})
        return decode(args, batched_input, model, embeddings)

    def recording_metrics(pred, label, names):
        values = metrics(pred, label, names)
        probabilities = torch.sigmoid(pred) if pred.min() < 0 else pred  # metrics.py:_list_tensor, _threshold
        cases[-1].update(done=True, metrics=dict(zip(names, map(float, values))),
                         mask=(probabilities[0, 0] > 0.5).cpu().numpy())
        return values

    test.prompt_and_decoder, test.SegMetrics = recording_decode, recording_metrics
    loader = test.DataLoader
    test.DataLoader = lambda **kw: loader(**{**kw, "num_workers": 0})
    names = list(json.loads(Path("data_demo/label2image_test.json").read_text()))
    try:
        sys.argv = ["test.py", *args_list]
        np.random.seed(seed)
        test.main(test.parse_args())
    finally:
        test.prompt_and_decoder, test.SegMetrics, test.DataLoader = decode, metrics, loader
    assert len(cases) == len(names), (len(cases), len(names))
    for case, name in zip(cases, names):
        case["name"] = name
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="an OpenGVLab/SAM-Med2D checkout (official code)")
    parser.add_argument("out", type=Path, help="output .npz")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    sys.path.insert(0, str(checkout))
    import segment_anything
    import test  # the checkout's test.py
    import utils

    assert Path(segment_anything.__file__).resolve().is_relative_to(checkout), segment_anything.__file__
    torch.set_num_threads(2)

    masks = box_masks()
    boxes = np.stack([utils.get_boxes_from_mask(mask.astype(np.int64), max_pixel=0).numpy()[0] for mask in masks])

    model = segment_anything.sam_model_registry["vit_b"](
        argparse.Namespace(image_size=SIZE, encoder_adapter=True, sam_checkpoint=None))
    work = args.out.resolve().parent / "sam_med2d_test_work"
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "parity.pth"
    torch.save({"model": parity_weights(model.state_dict())}, checkpoint)
    common = ["--device", "cpu", "--sam_checkpoint", str(checkpoint), "--work_dir", str(work)]
    box_mode = run_test_py(test, common, seed=0)
    # test.py's --boxes_prompt is type=bool: any non-empty string is True, so the empty string turns it off
    point_mode = run_test_py(test, [*common, "--boxes_prompt", "", "--iter_point", "5"], seed=0)
    checkpoint.unlink()

    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, check=False,
                            text=True).stdout.strip() or "unknown (not a git checkout)"
    record = {
        "box_mode": [{key: case[key] for key in ("name", "calls", "metrics")} for case in box_mode],
        "point_mode": [{key: case[key] for key in ("name", "calls", "metrics")} for case in point_mode],
        "source": f"OpenGVLab/SAM-Med2D@{commit[:7]} test.py main, torch {torch.__version__}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, box_masks=np.packbits(masks, axis=-1), box_boxes=boxes,
        record=np.array(json.dumps(record)),
        **{f"{mode}_{i}": np.packbits(case["mask"], axis=-1)
           for mode, cases in (("box", box_mode), ("point", point_mode)) for i, case in enumerate(cases)})
    print(f"wrote {args.out}: boxes {boxes.tolist()}")
    for mode, cases in (("box", box_mode), ("point", point_mode)):
        print(mode, [(case["name"].split("/")[-1], round(case["metrics"]["dice"], 4)) for case in cases])


if __name__ == "__main__":
    main()
