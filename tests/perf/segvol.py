"""Seconds per case for SegVol on CPU: zoom-out only and zoom-out-zoom-in, with a text and a box prompt.

The case is the real CT of ../shared/data/totalsegmentator_example (122 x 101 x 30) with the liver of its
TotalSegmentator label as the target (box drawn on the zoom-out label as inference_demo.py does). Weights are the
parity weights (official weights are not distributed here): the arithmetic per forward is the same, but how many
zoom-in windows run depends on the predicted region, so the count is printed with each time. Times include
preprocessing and the mapping back to the native grid, best of `--repeats` calls.

With `--official PATH` (a BAAI-DCAI/SegVol checkout) the official `zoom_in_zoom_out` runs on the same case in a
second interpreter (`--official-python`, an environment with SegVol's pins monai==0.9.0 and transformers==4.18.0,
see tests/goldens/README.md), preprocessing with its own `process_ct_gt`; the ratio official / ours and whether
the masks agree are printed. Both sides alike: each makes one untimed warm-up call, then the best of `--repeats`
is taken; the official interpreter runs with this one's torch threads; both are timed from the NIfTI files
(`process_ct_gt` reads the CT and its label, so ours reads them inside the timing too) to the final mask.
Run: `python -m tests.perf segvol [--repeats 3] [--official PATH --official-python PY]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.perf import timed

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT.parent / "shared" / "data" / "totalsegmentator_example"
LIVER = 5
MODES = {"zoom-out": False, "zoom-out-zoom-in": True}
KINDS = ("text", "box")


def run_ours(network, tokenizer, kind: str, zoom_in: bool):
    """One case end to end, as the official path is timed: reading the CT and its label, preprocessing, prompts
    from the zoom-out label, inference, back to the native grid."""
    from bench.data.io import read_label_map, read_volume
    from models.segvol.inference import official_prompt, segment_volume
    from models.segvol.preprocess import label_zoom_out, preprocess

    image = read_volume(CASE / "ct.nii.gz").array
    liver = read_label_map(CASE / "seg_total.nii.gz").array == LIVER
    volume = preprocess(image)
    prompt = official_prompt(label_zoom_out(liver, volume.geometry), "liver", kind)
    return segment_volume(network, volume, [prompt], tokenizer=tokenizer, use_zoom_in=zoom_in)[0], volume


def count_windows(network, function, *args):
    """(result, its Timing, image-encoder forwards) of one call."""
    calls = []
    hook = network.image_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        result, timing = timed(function, *args)
        return result, timing, len(calls)
    finally:
        hook.remove()


def run_official(python: str, checkout: Path, kind: str, zoom_in: bool, clip_dir: Path, out: Path,
                 repeats: int) -> dict:
    """The official demo path in a subprocess (this process's torch threads, a warm-up call, the best of
    `repeats`); returns its wall and CPU seconds and writes its final mask to `out`."""
    import torch

    script = Path(__file__).with_name("_segvol_official.py")
    command = [python, str(script), str(checkout.resolve()), str(CASE / "ct.nii.gz"), str(CASE / "seg_total.nii.gz"),
               "--kind", kind, "--clip", str(clip_dir), "--out", str(out), "--threads", str(torch.get_num_threads()),
               "--repeats", str(repeats)] + (["--zoom-in"] if zoom_in else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode:
        sys.exit(f"the official run failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf segvol", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed calls per configuration after a warm-up, on both sides (best is reported)")
    parser.add_argument("--clip", type=Path, help="CLIP tokenizer directory (default: a tiny test vocabulary)")
    parser.add_argument("--official", type=Path, help="a BAAI-DCAI/SegVol checkout to compare with")
    parser.add_argument("--official-python", default=sys.executable,
                        help="interpreter with SegVol's pins (monai 0.9.0, transformers 4.18.0)")
    args = parser.parse_args()
    if not (CASE / "ct.nii.gz").is_file():
        sys.exit(f"{CASE} is absent: this benchmark needs ../shared/data/totalsegmentator_example")
    import torch

    from bench.data.io import read_volume
    from models.segvol.checkpoint import parity_network
    from models.segvol.preprocess import to_segvol_grid
    from models.segvol.text import load_tokenizer

    sys.path.insert(0, str(ROOT / "tests" / "goldens"))
    from tiny_clip import write_tiny_clip_tokenizer

    with tempfile.TemporaryDirectory() as scratch:
        clip_dir = args.clip or write_tiny_clip_tokenizer(Path(scratch) / "clip")
        tokenizer = load_tokenizer(clip_dir)
        network = parity_network()
        print(f"SegVol on CPU ({torch.get_num_threads()} threads), parity weights; case: CT "
              f"{read_volume(CASE / 'ct.nii.gz').array.shape}, target liver; best of {args.repeats} after a warm-up")
        for mode, zoom_in in MODES.items():
            for kind in KINDS:
                best, forwards, mask, volume = None, 0, None, None
                run_ours(network, tokenizer, kind, zoom_in)  # the warm-up
                for _ in range(args.repeats):
                    (mask, volume), timing, forwards = count_windows(network, run_ours, network, tokenizer, kind,
                                                                     zoom_in)
                    best = timing if best is None or timing.wall < best.wall else best
                line = f"{mode:17s} {kind:5s} {best:7.2f} per case  ({forwards} image-encoder forwards)"
                if args.official:
                    out = Path(scratch) / f"official_{mode}_{kind}.npy"
                    official = run_official(args.official_python, args.official, kind, zoom_in, clip_dir, out,
                                            args.repeats)
                    theirs = np.load(out)
                    ours = to_segvol_grid(mask, volume.geometry)
                    same = theirs.shape == ours.shape and np.array_equal(theirs, ours)
                    differing = "shape differs" if theirs.shape != ours.shape else int((theirs != ours).sum())
                    line += (f" | official {official['seconds']:7.2f} s (CPU {official['cpu_seconds']:.2f} s), "
                             "ratio official/ours "
                             f"{official['seconds'] / best.wall:5.2f}, same mask: {same} ({differing} voxels differ)")
                print(line, flush=True)


if __name__ == "__main__":
    main()
