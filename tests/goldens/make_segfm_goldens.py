"""Goldens of the CVPR 2025 SegFM evaluator: the official `CVPR25_iter_eval.py` run unchanged, end to end, on small
fixed cases, with a scripted "docker" that answers each interaction with a fixed label map.

Usage (outside the project, in an environment with the official requirements: numpy 1.26, scipy 1.12, pandas,
connected-components-3d, tqdm; torch is replaced by a stub whose CUDA is unavailable, so the script takes its CPU
path):

    python tests/goldens/make_segfm_goldens.py /path/to/CVPR-MedSegFMCompetition tests/goldens/segfm

For each case it writes the challenge's input (imgs, gts, spacing, and `boxes` made by the official
`get_boxes.mask3D_to_bbox` with margin 0) and runs the script with `os.system` answering its docker commands:
interaction n writes `preds[n]` as `outputs/<case>.npz` (or nothing, a failed run). Recorded: the clicks and their
order in the input of every interaction, the script's metrics CSV, and the official boxes of every class for each
margin 0-5 (get_boxes.py with `np.random.randint` answering that margin). `large_roi.json`: compute_edt's 2x
downsampled path (its 60 M voxel threshold lowered to 1000 so a small component takes it) and sample_coord. Arrays are kept in the project's axis
order (i, j, k); the challenge's npz holds their transpose (z, y, x) and the spacing reversed.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import runpy
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

SHAPE = (16, 14, 12)


def _cube(lo, hi, shape=SHAPE) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


def _labels(*masks) -> np.ndarray:
    out = np.zeros(masks[0].shape, np.uint8)
    for value, mask in enumerate(masks, start=1):
        out[mask] = value
    return out


def cases() -> dict[str, dict]:
    """Each case: labels (i, j, k), spacing (exact in float32, as a NIfTI header stores it), whether it has a
    box, and 6 predictions (5 without a box; None: the run fails)."""
    out = {}
    ref = _cube((3, 2, 2), (9, 10, 9))
    slab_fp, slab_fn = _cube((1, 2, 2), (3, 10, 9)), _cube((3, 2, 2), (5, 10, 9))
    out["slabs"] = dict(labels=_labels(ref), spacing=(1.0, 1.0, 1.0), box=True, preds=[
        _labels((ref & ~slab_fn) | slab_fp),  # FN and FP slabs side by side: one error component
        _labels(ref & ~_cube((3, 2, 2), (9, 5, 9))),
        _labels(ref | _cube((9, 4, 4), (13, 8, 7))),
        _labels(ref & ~_cube((6, 6, 5), (9, 10, 9)) | _cube((11, 2, 2), (12, 3, 3))),
        _labels(ref & ~_cube((3, 2, 2), (4, 3, 9))),
        _labels(ref)])
    ball = _cube((3, 3, 2), (13, 12, 9))
    hole = _cube((6, 6, 4), (10, 9, 7))
    cap = _cube((4, 4, 9), (12, 11, 11))
    out["hole_cap"] = dict(labels=_labels(ball), spacing=(1.0, 1.0, 1.0), box=True, preds=[
        _labels((ball & ~hole) | cap),  # the hole (FN) is one component, the FP cap another: the cap is larger
        _labels(ball & ~hole),
        _labels((ball & ~_cube((6, 6, 4), (8, 8, 6))) | _cube((4, 4, 9), (6, 6, 10))),
        _labels(ball | _cube((13, 3, 2), (15, 12, 9))),
        _labels(ball & ~_cube((3, 3, 2), (13, 12, 3))),
        _labels(ball)])
    liver = _cube((2, 2, 1), (12, 11, 6))
    out["aniso"] = dict(labels=_labels(liver), spacing=(0.75, 0.875, 2.5), box=True, preds=[
        _labels(liver & ~_cube((2, 2, 1), (12, 11, 2))),
        _labels(liver & ~_cube((8, 2, 1), (12, 11, 6))),
        _labels(liver | _cube((2, 2, 6), (12, 11, 8))),
        _labels(liver & ~_cube((2, 2, 1), (5, 5, 6)) | _cube((12, 2, 1), (14, 11, 6))),
        _labels(liver & ~_cube((2, 9, 1), (12, 11, 6))),
        _labels(liver & ~_cube((2, 2, 1), (3, 11, 6)))])
    target = _cube((2, 2, 2), (14, 12, 10))
    first = _cube((2, 2, 7), (4, 4, 10))  # two equal missing corners: which is "largest" depends on voxel order
    second = _cube((12, 10, 2), (14, 12, 5))
    out["ties"] = dict(labels=_labels(target), spacing=(1.0, 1.0, 1.0), box=True, preds=[
        _labels(target & ~first & ~second),
        _labels(target & ~_cube((5, 5, 4), (9, 9, 8))),  # a 4^3 hole: 8 voxels at the distance maximum
        _labels(target & ~first),
        _labels(target | _cube((0, 0, 0), (2, 14, 12))),
        _labels(target & ~_cube((4, 4, 4), (12, 10, 8))),
        _labels(target & ~_cube((5, 5, 4), (9, 9, 8)))])
    big = _cube((1, 1, 1), (15, 13, 11))
    low = _cube((1, 1, 1), (4, 4, 4))  # DSC 2 * 27 / (27 + 14 * 12 * 10) ~ 0.03; with more voxels ~0.18
    out["dsc018"] = dict(labels=_labels(big), spacing=(1.0, 1.0, 2.0), box=True, preds=[
        _labels(low),
        _labels(_cube((1, 1, 1), (8, 7, 5))),  # DSC 2 * 168 / (168 + 1680) = 0.18: NSD set to 0
        _labels(_cube((1, 1, 1), (11, 6, 5))),  # DSC 0.21: NSD computed
        _labels(_cube((1, 1, 1), (15, 13, 3))),  # DSC ~0.31
        _labels(_cube((1, 1, 1), (15, 13, 6))),
        _labels(big & ~_cube((1, 1, 1), (15, 2, 11)))])
    kidney = _cube((2, 2, 2), (7, 7, 9))
    spleen = _cube((9, 3, 3), (15, 12, 10))
    out["two_class"] = dict(labels=_labels(kidney, spleen), spacing=(1.25, 1.25, 2.0), box=True, preds=[
        _labels(kidney, _cube((9, 3, 3), (11, 5, 5))),  # mean DSC of the classes ~0.53
        _labels(_cube((2, 2, 2), (5, 5, 5)), _cube((9, 3, 3), (12, 5, 6))),  # DSCs 0.27 and 0.09: mean <= 0.2
        _labels(kidney & ~_cube((2, 2, 2), (7, 3, 9)), spleen & ~_cube((9, 3, 3), (15, 12, 5))),
        _labels(kidney, spleen),
        _labels(kidney | _cube((7, 2, 2), (8, 7, 9)), spleen),
        _labels(kidney, spleen & ~_cube((9, 3, 3), (10, 12, 10)))])
    out["nobox"] = dict(labels=_labels(liver), spacing=(1.0, 1.0, 1.0), box=False, preds=[
        _labels(liver & ~_cube((2, 2, 1), (6, 11, 6))),
        _labels(liver & ~_cube((2, 2, 1), (3, 11, 6))),
        _labels(liver | _cube((12, 2, 1), (14, 5, 3))),
        _labels(liver),
        _labels(liver)])
    out["fail_mid"] = dict(labels=_labels(ref), spacing=(1.0, 1.0, 1.0), box=True, preds=[
        _labels(ref & ~slab_fn), _labels(ref & ~_cube((3, 2, 2), (9, 5, 9))), None,
        _labels(ref | _cube((9, 4, 4), (13, 8, 7))), None, _labels(ref & ~_cube((3, 2, 2), (4, 3, 9)))])
    out["fail_first"] = dict(labels=_labels(ref), spacing=(1.0, 1.0, 1.0), box=True, preds=[
        None, _labels(ref & ~slab_fn), _labels(ref & ~_cube((3, 2, 2), (9, 5, 9))),
        _labels(ref), _labels(ref), _labels(ref)])
    return out


def _functions(path: Path, names: set[str], namespace: dict) -> dict:
    """The named top-level functions of an official file, executed into `namespace` (the file's other top-level
    code, which reads folders and starts pools, is not run)."""
    tree = ast.parse(path.read_text())
    body = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


class _Margin:
    """Stands in for `np` inside get_boxes' functions: `np.random.randint` answers a fixed margin."""

    def __init__(self, margin: int):
        self.margin = margin
        self.random = types.SimpleNamespace(randint=lambda lo, hi, n: np.array([margin]))

    def __getattr__(self, name):
        return getattr(np, name)


def official_boxes(repo: Path, labels: np.ndarray) -> dict[str, list]:
    """get_boxes.mask3D_to_bbox of every class of `labels` (our order) for margins 0-5, in the challenge's order."""
    out = {}
    gts = np.ascontiguousarray(labels.T)
    for margin in range(6):
        functions = _functions(repo / "get_boxes.py", {"mask2D_to_bbox", "mask3D_to_bbox"}, {"np": _Margin(margin)})
        out[str(margin)] = [{k: int(v) for k, v in functions["mask3D_to_bbox"](gts == value, "case").items()}
                            for value in np.unique(gts)[1:]]
    return out


def run_official(repo: Path, all_cases: dict[str, dict]) -> tuple[dict, dict]:
    """Run CVPR25_iter_eval.py on the cases; returns (per case: the clicks given at each interaction, per case:
    the CSV row)."""
    work = Path(tempfile.mkdtemp(prefix="segfm_golden_"))
    for sub in ("imgs", "gts", "team_docker", "seg"):
        (work / sub).mkdir()
    (work / "team_docker" / "scripted.tar.gz").write_bytes(b"")
    for name, case in all_cases.items():
        gts = np.ascontiguousarray(case["labels"].T)
        extra = {}
        if case["box"]:
            functions = _functions(repo / "get_boxes.py", {"mask2D_to_bbox", "mask3D_to_bbox"}, {"np": _Margin(0)})
            extra["boxes"] = [functions["mask3D_to_bbox"](gts == v, name) for v in np.unique(gts)[1:]]
        np.savez_compressed(work / "imgs" / f"{name}.npz", imgs=(gts * 50).astype(np.uint8),
                            spacing=np.array(case["spacing"][::-1]), **extra)
        np.savez_compressed(work / "gts" / f"{name}.npz", gts=gts)
    calls: dict[str, list] = {name: [] for name in all_cases}
    real_system = os.system

    def docker(cmd: str) -> int:
        if "docker container run" not in cmd:
            return 0  # image load / rmi / chmod
        (case_file,) = os.listdir(work / "inputs")
        name = case_file.removesuffix(".npz")
        with np.load(work / "inputs" / case_file, allow_pickle=True) as given:
            clicks = [{"fg": [list(map(int, c)) for c in d["fg"]], "bg": [list(map(int, c)) for c in d["bg"]]}
                      for d in given["clicks"]] if "clicks" in given else None
            order = [list(o) for o in given["clicks_order"]] if "clicks_order" in given else None
        calls[name].append({"clicks": clicks, "clicks_order": order})
        pred = all_cases[name]["preds"][len(calls[name]) - 1]
        if pred is not None:
            np.savez_compressed(work / "outputs" / case_file, segs=np.ascontiguousarray(pred.T))
        return 0

    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(is_available=lambda: False, empty_cache=lambda: None)
    saved = dict(argv=sys.argv, cwd=os.getcwd(), torch=sys.modules.get("torch"), path=list(sys.path))
    try:
        os.system, sys.modules["torch"] = docker, torch
        sys.path.insert(0, str(repo))
        os.chdir(work)
        sys.argv = ["CVPR25_iter_eval.py", "-i", "imgs", "-o", "seg", "-d", "team_docker", "-val_gts", "gts"]
        runpy.run_path(str(repo / "CVPR25_iter_eval.py"), run_name="__main__")
    finally:
        os.system, sys.argv, sys.path[:] = real_system, saved["argv"], saved["path"]
        os.chdir(saved["cwd"])
        if saved["torch"] is None:
            sys.modules.pop("torch", None)
    with open(work / "seg" / "scripted" / "scripted_metrics.csv") as handle:
        table = {row["CaseName"].removesuffix(".npz"): {k: float(v) for k, v in row.items()
                                                        if k != "CaseName" and "RunningTime" not in k}
                 for row in csv.DictReader(handle)}  # the scores (run times are the scripted docker's, not kept)
    return calls, table


def large_roi(repo: Path) -> dict:
    """compute_edt's 2x path (a padded crop above 60 M voxels) on a small component: the official function with
    that one constant lowered to 1000 (ast), then sample_coord; in the challenge's order."""
    tree = ast.parse((repo / "CVPR25_iter_eval.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == 60000000:
            node.value = 1000
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("compute_edt", "sample_coord")]
    torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: False))
    from scipy.ndimage import distance_transform_edt

    namespace = {"np": np, "torch": torch, "distance_transform_edt": distance_transform_edt}
    exec(compile(ast.Module(body=body, type_ignores=[]), "CVPR25_iter_eval.py", "exec"), namespace)
    component = np.ascontiguousarray((_cube((2, 1, 1), (13, 9, 8)) | _cube((5, 6, 3), (15, 13, 11))).T)
    edt = namespace["compute_edt"](component) * component
    return {"component_shape": list(component.shape), "edt": edt.tolist(),
            "center": [int(c) for c in namespace["sample_coord"](edt)]}


def main(repo: str, out: str) -> None:
    repo_path, out_path = Path(repo).resolve(), Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    all_cases = cases()
    calls, table = run_official(repo_path, all_cases)
    arrays = {}
    for name, case in all_cases.items():
        arrays[f"{name}/labels"] = case["labels"]
        for n, pred in enumerate(case["preds"]):
            if pred is not None:
                arrays[f"{name}/pred{n}"] = pred
    np.savez_compressed(out_path / "cases.npz", **arrays)
    expected = {name: {"spacing": list(case["spacing"]), "box": case["box"], "n_preds": len(case["preds"]),
                       "failed": [n for n, p in enumerate(case["preds"]) if p is None],
                       "calls": calls[name], "csv": table.get(name),
                       "boxes": official_boxes(repo_path, case["labels"]) if case["box"] else None}
                for name, case in all_cases.items()}
    commit = os.popen(f"git -C {repo_path} rev-parse --short HEAD 2>/dev/null").read().strip() or "748e862"
    (out_path / "expected.json").write_text(json.dumps({"official": f"JunMa11/CVPR-MedSegFMCompetition@{commit}",
                                                        "cases": expected}, indent=1))
    (out_path / "large_roi.json").write_text(json.dumps(large_roi(repo_path)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
