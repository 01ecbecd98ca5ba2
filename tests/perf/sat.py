"""Seconds per case for SAT (parity weights) on the real CT: preprocessing, windows, inverse, scoring.

The TotalSegmentator example CT (122 x 101 x 30 at 3 mm) goes through SAT-DS preprocessing, SAT's sliding-window
inference with N text queries (seeded stand-ins for class embeddings, which are computed once per checkpoint and
cached), the inverse to the native grid, and DSC/NSD scoring against the reference labels (the scores of parity
weights mean nothing; their cost is real). With `--official PATH` (a zhaoziheng/SAT checkout) the same scan and
queries also go through the official code in the same process (its dataset, `split_3d` and `inference()` loop,
which writes NIfTIs in SAT space): the ratio of times and the agreement of the SAT-space masks are printed.
Fair by construction: one process (the same threads), one untimed warm-up window first (the kernels' first-call
costs paid before either side is timed; the official code runs after ours, warm too), and the same I/O on both
sides: the official item reads the CT from its NIfTI and its loop writes per-class masks, the label map and the
image (zhaoziheng/SAT evaluate/inference_engine.py:119-136), so ours is timed reading the CT and writing those
same files (`write_as_official`); the ratio compares reading + preprocessing + windows + writing.
Run: `python -m tests.perf sat [--size nano|pro] [--classes 15] [--batch-size 1] [--official PATH]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.perf import Timing, timed

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "totalsegmentator_example"


def _official(checkout: Path, network_state: dict, queries, batch_size: int, modality: str = "ct"):
    """The official dataset item and inference loop on the CT; returns (SAT-space masks, Timing per phase)."""
    import nibabel as nib
    import torch

    os.environ.setdefault("RANK", "0")  # SAT's is_master() reads it
    import evaluate.inference_engine as engine
    from data.inference_dataset import Inference_Dataset
    from model.maskformer import Maskformer

    network = Maskformer("UNET" if network_state["size"] == "nano" else "UNET-L", [288, 288, 96], [32, 32, 32])
    network.load_state_dict(network_state["weights"], strict=True)
    labels = [f"class{j}" for j in range(len(queries))]

    class Queries(torch.nn.Module):
        def forward(self, names, modality):
            return queries

    with tempfile.TemporaryDirectory() as folder:
        jsonl = Path(folder, "case.jsonl")
        jsonl.write_text(json.dumps({"image": str(DATA / "ct.nii.gz"), "label": labels, "modality": modality,
                                     "dataset": "bench"}) + "\n")
        dataset = Inference_Dataset(str(jsonl), batch_size=batch_size)
        item, pre = timed(dataset.__getitem__, 0)
        out = Path(folder, "out")
        out.mkdir()
        _, windows = timed(engine.inference, network, Queries(), torch.device("cpu"), dataset, [item], str(out))
        masks = np.stack([np.asarray(nib.load(out / "bench" / "seg_ct" / f"{name}.nii.gz").dataobj) > 0.5
                          for name in labels])
    return masks, {"reading + preprocessing (MONAI)": pre, "windows + writing": windows}


def write_as_official(masks: np.ndarray, image: np.ndarray, folder: Path) -> None:
    """The files the official inference loop writes per scan, as it writes them (float64, identity affine): each
    class's mask, the label map, the image (zhaoziheng/SAT evaluate/inference_engine.py:119-136)."""
    import nibabel as nib

    results = np.zeros(masks.shape[1:])
    for j, mask in enumerate(masks.astype(np.float64)):
        results += mask * (j + 1)
        nib.save(nib.Nifti1Image(mask, np.eye(4)), folder / f"class{j}.nii.gz")
    nib.save(nib.Nifti1Image(results, np.eye(4)), folder / "seg.nii.gz")
    nib.save(nib.Nifti1Image(image, np.eye(4)), folder / "img.nii.gz")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf sat", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["nano", "pro"], default="nano")
    parser.add_argument("--classes", type=int, default=15, help="text queries per scan (default 15, AMOS)")
    parser.add_argument("--batch-size", type=int, default=1, help="windows per backbone pass (SAT: 2)")
    parser.add_argument("--official", type=Path, help="a zhaoziheng/SAT checkout, to time the official code")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # phases print as they finish, even if a later one is killed
    if not (DATA / "ct.nii.gz").is_file():
        sys.exit(f"{DATA / 'ct.nii.gz'} is absent: this benchmark needs ../shared/data/totalsegmentator_example")
    if args.official:  # SAT's own copy of dynamic-network-architectures must be imported before ours
        sys.path[:0] = [str(args.official), str(args.official / "model" / "dynamic-network-architectures-main")]

    import torch

    from bench.data.io import read_label_map, read_volume
    from bench.engine.preprocess import from_sat, preprocess
    from models.parity import parity_state_dict
    from models.sat.inference import THRESHOLD, predict_volume, split_windows
    from models.sat.network import CONFIGS, SATNetwork
    from protocols.case import evaluate_case

    volume, read = timed(read_volume, DATA / "ct.nii.gz")
    reference = read_label_map(DATA / "seg_total.nii.gz")
    names = json.loads((DATA / "classes.json").read_text())
    classes = {names[str(j + 1)]: j + 1 for j in range(args.classes)}
    scored_reference = np.where(reference.array <= args.classes, reference.array, 0)  # the classes asked for
    network, build = timed(lambda: SATNetwork(CONFIGS[args.size]).eval())
    network.load_state_dict(parity_state_dict(network))
    queries = torch.randn((args.classes, 768), generator=torch.Generator().manual_seed(0))

    case, pre = timed(preprocess, volume, "ct")
    windows = split_windows(case.image.shape)
    print(f"SAT-{args.size} (parity weights), CT {volume.array.shape} -> SAT space {case.image.shape}, "
          f"{len(windows)} windows of 288x288x96, {args.classes} classes, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads; network built in {build:.1f}")
    print(f"  {'reading the CT':16s} {read:8.2f}")
    print(f"  {'preprocessing':16s} {pre:8.2f}")
    _, warm = timed(predict_volume, network, queries, case.image[tuple(slice(0, n) for n in network.image_size)],
                    batch_size=args.batch_size)
    print(f"  {'warm-up window':16s} {warm:8.2f} (left out of every figure)")
    probabilities, infer = timed(predict_volume, network, queries, case.image, batch_size=args.batch_size)
    masks = probabilities > THRESHOLD
    print(f"  {'windows':16s} {infer:8.2f}, {infer / len(windows):.2f} per window")
    with tempfile.TemporaryDirectory() as folder:
        _, write = timed(write_as_official, masks, case.image, Path(folder))
    print(f"  {'writing':16s} {write:8.2f} (the files the official loop writes)")

    def inverse():
        labels = np.zeros(volume.array.shape, np.uint16)
        for j, mask in enumerate(masks):
            labels[from_sat(case.transform, mask)] = j + 1
        return labels

    labels, back = timed(inverse)
    print(f"  {'inverse':16s} {back:8.2f}")
    _, score = timed(evaluate_case, labels, scored_reference, reference.spacing, classes)
    print(f"  {'scoring':16s} {score:8.2f}")
    print(f"  {'total per case':16s} {read + pre + infer + back + score:8.2f} (without the writing)")
    if args.official:
        official, phases = _official(args.official, {"size": args.size, "weights": network.state_dict()},
                                     queries, args.batch_size)
        print("official code, same process:")
        for phase, timing in phases.items():
            print(f"  {phase:22s} {timing:8.2f}")
        ours = read + pre + infer + write
        theirs = sum(phases.values(), start=Timing(0.0, 0.0))
        print(f"  ratio ours/official (reading + preprocessing + windows + writing): {ours.wall / theirs.wall:.2f} "
              f"wall, {ours.cpu / theirs.cpu:.2f} CPU")
        if official.shape == masks.shape:
            print(f"  SAT-space masks: {np.mean(official == masks):.6%} of voxels agree")
        else:
            print(f"  SAT-space shapes differ: official {official.shape[1:]}, ours {masks.shape[1:]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory {peak:.1f} GiB")


if __name__ == "__main__":
    main()
