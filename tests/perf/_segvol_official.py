"""Driver for `python -m tests.perf segvol --official PATH`: the official SegVol demo path on one case.

Runs in an interpreter that has SegVol's pins (monai==0.9.0, transformers==4.18.0; tests/goldens/README.md), never
in the project's: `process_ct_gt` + `zoom_in_zoom_out` of the checkout at PATH, with the parity weights and CUDA
calls turned into no-ops, for the liver (TotalSegmentator label 5), with `--threads` torch threads (the caller's):
one untimed warm-up call, then the best wall and CPU seconds of `--repeats` calls, each from the NIfTI files to the
mask. Prints one JSON line with the seconds and saves the final mask (sigmoid > 0.5 on SegVol's zoom-in grid) as
.npy.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
ROI = (32, 256, 256)
CATEGORIES = ["spleen", "kidney_right", "kidney_left", "gallbladder", "liver"]  # label value = index + 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkout", type=Path)
    parser.add_argument("ct")
    parser.add_argument("seg")
    parser.add_argument("--kind", choices=("text", "box"), required=True)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--zoom-in", action="store_true")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path[:0] = [str(ROOT / "tests" / "goldens"), str(ROOT)]
    from make_segvol_goldens import (
        official_model,  # puts the checkout on sys.path, CUDA calls become no-ops
    )

    model = official_model(args.checkout)
    from data_process.demo_data_process import process_ct_gt
    from inference_demo import zoom_in_zoom_out
    from transformers import AutoTokenizer, CLIPTokenizer

    build = argparse.Namespace(spatial_size=ROI, infer_overlap=0.5, use_zoom_in=args.zoom_in,
                               use_text_prompt=args.kind == "text", use_box_prompt=args.kind == "box",
                               use_point_prompt=False)
    try:
        model.text_encoder.tokenizer = AutoTokenizer.from_pretrained(args.clip)
    except (TypeError, ValueError, OSError):  # 4.18 cannot convert a vocab/merges directory to a fast tokenizer here
        model.text_encoder.tokenizer = CLIPTokenizer.from_pretrained(args.clip)
    def case():
        item = process_ct_gt(args.ct, args.seg, CATEGORIES, ROI)
        index = CATEGORIES.index("liver")
        record = zoom_in_zoom_out(build, model, item["image"].float().unsqueeze(0),
                                  item["zoom_out_image"].float().unsqueeze(0),
                                  item["label"][index:index + 1].unsqueeze(0),
                                  item["zoom_out_label"][index:index + 1].unsqueeze(0), categories=["liver"])
        return (torch.sigmoid(record["liver"][4]) > 0.5).numpy()

    case()  # the warm-up
    timings = []
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        mask = case()
        timings.append((time.perf_counter() - start, time.process_time() - cpu))
    np.save(args.out, mask)
    print(json.dumps({"seconds": min(t[0] for t in timings), "cpu_seconds": min(t[1] for t in timings),
                      "shape": list(mask.shape)}))


if __name__ == "__main__":
    main()
