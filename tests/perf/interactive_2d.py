"""Seconds per click for the slice-wise 2D models (SAM ViT-B/L/H, SAM-Med2D) on an AMOS-size volume.

The volume is the AMOS22 label map (512 x 512 x 82) turned into intensities (organ value x 40 plus noise); the
target is the liver. Each model (parity weights, CPU unless --device) runs through the 2D-to-3D adapter: a click
on each of `--slices` liver slices, then `--clicks - 1` refinement clicks on each of them. Reported per model:
encoder seconds per slice, decoder seconds per click (median), and the number of encoder passes, which must
equal the number of slices clicked (the encoder runs once per slice, the decoder once per click). The ratio
encoder / decoder, measured in the same run, says how many clicks one encoder pass costs.
Run: `python -m tests.perf interactive_2d [--models sam-vit-b,sam-med2d] [--slices 2] [--clicks 3]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.data.io import read_label_map
from tests.perf import Timing
from models.adapters import SliceWise
from models.base import Image, Target
from models.parity import load_parity_weights
from models.sam.model import SamSlices
from models.sam.network import build_sam
from models.sam_med2d.network import build_sam_med2d
from protocols.prompts import Click, Prompt

AMOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "amos" / "amos_0013_label.nii.gz"
LIVER = 6
MODELS = {
    "sam-vit-b": lambda: (build_sam("vit_b"), "sam-api"),
    "sam-vit-l": lambda: (build_sam("vit_l"), "sam-api"),
    "sam-vit-h": lambda: (build_sam("vit_h"), "sam-api"),
    "sam-med2d": lambda: (build_sam_med2d(), "sam-med2d"),
}


def _clicks(liver: np.ndarray, slices: list[int], rng: np.random.Generator) -> list[Click]:
    clicks = []
    for k in slices:
        points = np.argwhere(liver[..., k])
        row, col = points[rng.integers(len(points))]
        clicks.append(Click((int(row), int(col), k), True))
    return clicks


def _now() -> Timing:
    return Timing(time.perf_counter(), time.process_time())


def _since(start: Timing) -> Timing:
    end = _now()
    return Timing(end.wall - start.wall, end.cpu - start.cpu)


def time_model(name: str, image: Image, liver: np.ndarray, n_slices: int, n_clicks: int, device: str) -> dict:
    network, path = MODELS[name]()
    network = load_parity_weights(network).to(device)
    encoder_seconds: list[Timing] = []
    decoder_seconds: list[Timing] = []
    started: list[Timing] = []
    network.image_encoder.register_forward_pre_hook(lambda *args: started.append(_now()))
    network.image_encoder.register_forward_hook(lambda *args: encoder_seconds.append(_since(started[-1])))
    model = SliceWise(model=SamSlices(network=network, path=path, name=name), axis=2)
    rng = np.random.default_rng(0)
    depth = np.flatnonzero(liver.any(axis=(0, 1)))
    slices = [int(k) for k in depth[np.linspace(0, len(depth) - 1, n_slices + 2).astype(int)[1:-1]]]
    history: dict[int, list[Click]] = {k: [] for k in slices}
    state: dict = {}
    for _ in range(n_clicks):
        for k, click in zip(slices, _clicks(liver, slices, rng)):
            history[k].append(click)
            passes = len(encoder_seconds)
            start = _now()
            model.segment(image, [Target("liver", Prompt(points=tuple(history[k])))], state)
            if device != "cpu":
                torch.cuda.synchronize()
            if len(encoder_seconds) == passes:
                decoder_seconds.append(_since(start))
    return {"encoder_s": float(np.median([t.wall for t in encoder_seconds])),
            "encoder_cpu_s": float(np.median([t.cpu for t in encoder_seconds])),
            "decoder_s": float(np.median([t.wall for t in decoder_seconds])),
            "decoder_cpu_s": float(np.median([t.cpu for t in decoder_seconds])),
            "encoder_passes": len(encoder_seconds), "slices": len(slices),
            "clicks": n_clicks * len(slices)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sam-vit-b,sam-med2d", help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--clicks", type=int, default=3, help="clicks per slice (the first plus refinements)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        sys.exit(f"unknown models {sorted(unknown)}; known: {', '.join(MODELS)}")
    if not AMOS.is_file():
        sys.exit(f"{AMOS} is absent: this benchmark needs ../shared/data/amos")
    labels = read_label_map(AMOS).array
    noise = np.random.default_rng(0).normal(0, 10, labels.shape)
    image = Image(array=(labels * 40.0 + noise).astype(np.float32), spacing=(0.78, 0.78, 5.0), affine=np.eye(4))
    liver = labels == LIVER
    print(f"AMOS-size volume {labels.shape}; target liver; {args.slices} slices x {args.clicks} clicks; "
          f"device {args.device}, torch threads {torch.get_num_threads()}")
    print("\n| model | encoder s/slice | encoder CPU s/slice | decoder s/click | decoder CPU s/click | encoder/decoder "
          "| encoder passes = slices |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        result = time_model(name, image, liver, args.slices, args.clicks, args.device)
        ratio = result["encoder_s"] / result["decoder_s"]
        once = "yes" if result["encoder_passes"] == result["slices"] else f"NO ({result['encoder_passes']})"
        print(f"| {name} | {result['encoder_s']:.2f} | {result['encoder_cpu_s']:.2f} | {result['decoder_s']:.3f} | "
              f"{result['decoder_cpu_s']:.3f} | {ratio:.0f} | {once} |")


if __name__ == "__main__":
    main()
