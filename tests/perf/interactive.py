"""Seconds per click of the interactive models on an AMOS-size volume (512 x 512 x 82 at 0.78 x 0.78 x 5 mm).

The volume is the real AMOS22 label map of ../shared/data/amos with a seeded synthetic CT made from it (organ
intensities plus noise); the target is the liver. Weights are the parity weights (no official weights here):
timings do not depend on weight values. For each model: the per-case work (preprocessing, image encoder), the
per-click work (prompt encoder + decoder, mapping the mask back to the native grid), how often the encoder and
the decoder actually ran (counted by forward hooks: the encoder must run once per case, the decoder once per
click), and, as the reference measured in the same run, what a click would cost if the encoder ran on every
click.
Run: `python -m tests.perf interactive [--clicks N] [--device cpu|cuda] [--threads T]`.
More models: add a function to MODELS that returns a Row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.io import read_label_map
from tests.perf import timed
from protocols.prompts_clicks import first_click, next_click

AMOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "amos" / "amos_0013_label.nii.gz"
LIVER = 6
ORGAN_HU = np.array([-50, 45, 30, 30, 10, 40, 60, 20, 180, 150, 40, 30, 30, 35, 10, 40], np.float64)


@dataclass(frozen=True)
class Case:
    image: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, ...]
    target: np.ndarray


@dataclass(frozen=True)
class Row:
    model: str
    device: str
    preprocess_s: float
    encoder_s: float
    encoder_cpu_s: float
    encoder_calls: int
    decoder_ms: float  # median per click
    decoder_cpu_ms: float
    to_native_ms: float  # median per click
    decoder_calls: int
    clicks: int
    reencode_click_s: float  # reference: encoder + decoder + back-mapping on every click


def load_case() -> Case:
    labels = read_label_map(AMOS)
    rng = np.random.default_rng(0)
    image = ORGAN_HU[labels.array] + rng.normal(0.0, 15.0, labels.array.shape)
    return Case(np.rint(image).astype(np.int16), labels.affine, labels.spacing, labels.array == LIVER)


def _timed(function, *args, **kwargs):
    result, timing = timed(function, *args, **kwargs)
    return result, timing.wall


def _cpu_timed(function, *args, **kwargs):
    """Wall seconds and this process's CPU seconds (all threads): on a shared machine the second is steadier."""
    result, timing = timed(function, *args, **kwargs)
    return result, timing.wall, timing.cpu


def bench_sam_med3d(case: Case, n_clicks: int, device: str) -> Row:
    import torch

    from models.checkpoints import load_state_dict
    from models.parity import parity_state_dict
    from models.sam_med3d.inference import encode, predict_click
    from models.sam_med3d.network import build_sam_med3d
    from models.sam_med3d.preprocess import crop_around_label, native_to_crop, to_native

    model = build_sam_med3d()
    load_state_dict(model, parity_state_dict(model))
    model.to(device)
    calls = {"encoder": 0, "decoder": 0}
    model.image_encoder.register_forward_hook(lambda *_: calls.__setitem__("encoder", calls["encoder"] + 1))
    model.mask_decoder.register_forward_hook(lambda *_: calls.__setitem__("decoder", calls["decoder"] + 1))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    crop, preprocess_s = _timed(crop_around_label, case.image, case.affine, case.target)
    sync()
    embedding, encoder_s, encoder_cpu_s = _cpu_timed(lambda: (encode(model, crop), sync())[0])
    rng = np.random.default_rng(0)
    clicks = [first_click("center", case.target, case.spacing, rng)]
    previous, decoder_ms, decoder_cpu_ms, to_native_ms = None, [], [], []
    for _ in range(n_clicks):
        points = np.rint(native_to_crop([c.point for c in clicks], crop))
        labels = [int(c.positive) for c in clicks]
        result, decoder = timed(lambda: (predict_click(model, embedding, points, labels, previous), sync())[0])
        decoder_ms.append(1e3 * decoder.wall)
        decoder_cpu_ms.append(1e3 * decoder.cpu)
        native, seconds = _timed(to_native, result.crop_mask, crop)
        to_native_ms.append(1e3 * seconds)
        previous = result.low_res
        click = next_click("random_error", native, case.target, case.spacing, rng)
        if click is None:
            break
        clicks.append(click)
    encoder_calls, decoder_calls = calls["encoder"], calls["decoder"]

    _, reencode_s = _timed(lambda: (predict_click(model, encode(model, crop), points, labels, None, crop), sync()))
    return Row("sam-med3d", device, preprocess_s, encoder_s, encoder_cpu_s, encoder_calls, float(np.median(decoder_ms)),
               float(np.median(decoder_cpu_ms)), float(np.median(to_native_ms)), decoder_calls, len(decoder_ms),
               reencode_s)


MODELS: dict[str, Callable[[Case, int, str], Row]] = {"sam-med3d": bench_sam_med3d}


COLUMNS = ("model", "device", "preprocess s", "encoder s (per case)", "encoder CPU s", "encoder calls",
           "decoder ms/click", "decoder CPU ms/click", "to-native ms/click", "decoder calls", "s/click (encoder amortised)",
           "s/click re-encoding")


def print_table(rows: list[Row]) -> None:
    print("\n| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        amortised = (r.preprocess_s + r.encoder_s) / r.clicks + (r.decoder_ms + r.to_native_ms) / 1e3
        cells = (r.model, r.device, f"{r.preprocess_s:.2f}", f"{r.encoder_s:.2f}", f"{r.encoder_cpu_s:.1f}",
                 r.encoder_calls, f"{r.decoder_ms:.0f}", f"{r.decoder_cpu_ms:.0f}", f"{r.to_native_ms:.0f}", r.decoder_calls, f"{amortised:.2f}",
                 f"{r.reencode_click_s:.2f}")
        print("| " + " | ".join(str(c) for c in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(prog=sys.argv[0], description=__doc__.split("\n")[0])
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--model", action="append", choices=sorted(MODELS), help="default: every model")
    args = parser.parse_args()
    if not AMOS.is_file():
        sys.exit(f"{AMOS} is absent: this benchmark needs ../shared/data/amos")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    case = load_case()
    print(f"AMOS volume {case.image.shape} at {tuple(round(s, 3) for s in case.spacing)} mm, target liver "
          f"({int(case.target.sum())} voxels), {args.clicks} clicks (center, then random_error), parity weights, "
          f"{device}, {torch.get_num_threads()} CPU threads")
    print_table([MODELS[name](case, args.clicks, device) for name in (args.model or sorted(MODELS))])


if __name__ == "__main__":
    main()
