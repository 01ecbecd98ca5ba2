"""The HTML report: files on disk, pictures of the segmentations, a clicks-only report, and a render in headless
Chromium of a TotalSegmentator-size run (117 classes): every image loads, no console message, no table sticks out
of the page at 1400 px, interval cells stay on one line, and the rendered class labels measure at least 8 pt.
Without Chromium the render test skips locally and fails under CI=true. Set MEDSEG_SCREENSHOT_DIR to keep the
screenshot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.data.catalog import load_catalog
from bench.data.io import write_volume
from bench.cli.app import app
from bench.views.report import write_report
from typer.testing import CliRunner
from bench.views.report.figures import LABEL_PT, MAX_PER_PANEL
from bench.views.report.page import anchor
from tests.test_tables import write_click_run, write_runs

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WIDTH = 1400


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    runs = [*write_runs(folder), write_click_run(folder)]
    out = tmp_path_factory.mktemp("out") / "report"
    return write_report(runs, out, published=["sat-table1", "sat-table3"], n_boot=50)


def totalsegmentator_runs(folder: Path, n_classes: int = 117) -> list[Path]:
    """Two runs on 117 classes of the catalog's TotalSegmentator datasets, 3 cases each."""
    catalog = load_catalog()
    pairs, seen = [], set()
    for name in sorted(n for n in catalog.datasets if n.startswith("TotalSegmentator_") and n != "TotalSegmentator_v2"):
        info = catalog.datasets[name]
        for class_name, key in info.term_keys().items():
            if key not in seen and len(pairs) < n_classes:
                seen.add(key)
                pairs.append((name, class_name))
    assert len(pairs) == n_classes
    rng = np.random.default_rng(1)
    dirs = []
    for run, shift in (("TotalSeg-model", 0.0), ("other-model", -0.05)):
        rows = pd.DataFrame([
            dict(run=run, model=run, dataset=dataset, case_id=f"s{i:04d}", modality="CT", class_name=class_name,
                 dsc=float(np.clip(rng.uniform(0.6, 0.97) + shift, 0, 1)), nsd=float(rng.uniform(0.5, 0.95)),
                 ref_empty=False, pred_empty=False)
            for dataset, class_name in pairs for i in range(3)
        ])
        path = folder / run
        path.mkdir()
        rows.to_parquet(path / "metrics.parquet")
        dirs.append(path)
    return dirs


@pytest.fixture(scope="module")
def big_report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ts-runs")
    out = tmp_path_factory.mktemp("ts-out") / "report"
    return write_report(totalsegmentator_runs(folder), out, published=["sat-table1", "sat-table3", "sat-table4"],
                        n_boot=50)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is missing under CI (.ci/run installs it with apt-get)")
    pytest.skip("chromium is not installed")


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_report_files(report):
    figures = report.parent / "figures"
    for stem in ("regions_dsc", "regions_nsd", "classes_dsc_00", "classes_nsd_00", "clicks_dsc", "clicks_nsd"):
        assert (figures / f"{stem}.png").stat().st_size > 0
        assert (figures / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    page = report.read_text()
    for text in ("Leaderboard", "H&amp;N", "nnU-Nets (SAT)", "ct_liver", "AbdomenCT1K", "Run metadata",
                 "Interactive clicks", "DSC vs clicks", "SAM-Med3D Table 3 layout", "k points", "Paired tests",
                 "SAM-Med3D (SAM-Med3D paper, 1.5 mm grid)", "harness", "medseg-bench", "cross-grid",
                 "pictures skipped"):
        assert text in page, text
    assert "<u>" in page and 'class="ci">[' in page  # best values underlined, intervals on the value's line
    assert re.search(r"<dt>date</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC</dd>", page)
    bars = (figures / "regions_dsc.svg").read_text()
    assert bars.count('id="LineCollection') or "ecolor" not in bars  # matplotlib draws error bars as collections
    assert len(re.findall(r'<g id="LineCollection_\d+">', bars)) >= 1


def test_click_only_run_is_reportable(tmp_path):
    index = write_report([write_click_run(tmp_path)], tmp_path / "out", n_boot=20)
    page = index.read_text()
    assert "DSC vs clicks" in page and "Leaderboard" not in page
    curve = (tmp_path / "out" / "figures" / "clicks_dsc.svg").read_text()
    assert "PolyCollection" in curve or "FillBetween" in curve  # the interval band


def picture_run(folder: Path, name: str, shift: int) -> Path:
    """A run with real files: two 24^3 cases with a cube of label 1 ('liver'); the prediction is shifted."""
    refs, preds = folder / "labels", folder / f"pred-{name}"
    refs.mkdir(exist_ok=True)
    preds.mkdir()
    rows = []
    for case in ("a_001", "a_002"):
        ref = np.zeros((24, 24, 24), np.uint8)
        ref[6:16, 6:16, 6:16] = 1
        pred = np.roll(ref, shift + (case == "a_002"), axis=0)
        write_volume(refs / f"{case}.nii.gz", ref, np.eye(4))
        write_volume(preds / f"{case}.nii.gz", pred, np.eye(4))
        overlap = np.count_nonzero(ref & pred)
        rows.append(dict(run=name, model=name, dataset="KiTS23", case_id=case, modality="CT", class_name="liver",
                         dsc=2 * overlap / 2000, nsd=0.5, ref_empty=False, pred_empty=False))
    run_dir = folder / name
    run_dir.mkdir()
    pd.DataFrame(rows).to_parquet(run_dir / "metrics.parquet")
    config = {"run": name, "classes": {"liver": 1}, "pred_dir": str(preds), "ref_dir": str(refs),
              "empty_policy": "sat", "tolerance_mm": 1.0}
    (run_dir / "run.json").write_text(json.dumps(config))
    return run_dir


def test_pictures_show_best_median_worst_with_every_run(tmp_path):
    runs = [picture_run(tmp_path, "first", 1), picture_run(tmp_path, "second", 3)]
    index = write_report(runs, tmp_path / "out", n_boot=20)
    page = index.read_text()
    pictures = sorted((tmp_path / "out" / "figures" / "pictures").glob("*.png"))
    assert [p.name for p in pictures] == ["ct_liver__a_001.png", "ct_liver__a_002.png"]  # best and worst (= median)
    assert 'id="pictures-ct_liver"' in page and 'href="#pictures-ct_liver"' in page
    assert anchor("pictures", "ct_left kidney") == "pictures-ct_left-kidney"
    assert "best (DSC 90.0)" in page and "worst (DSC 80.0)" in page
    index = write_report(runs, tmp_path / "one", n_boot=20, picture_case="a_002")
    assert [p.name for p in (tmp_path / "one" / "figures" / "pictures").glob("*.png")] == ["ct_liver__a_002.png"]
    shutil.rmtree(tmp_path / "pred-first")
    page = write_report(runs, tmp_path / "gone", n_boot=20).read_text()
    assert "pictures skipped" in page and "not available" in page


def svg_label_points(svg: Path) -> tuple[float, float]:
    """(smallest x tick label font size, viewBox width) of a matplotlib SVG, in the SVG's user units (pt)."""
    root = ET.parse(svg).getroot()
    width = float(root.attrib["viewBox"].split()[2])
    sizes = []
    for element in root.iter():
        if element.tag.endswith("text") and "rotate(-90" in element.attrib.get("transform", ""):
            match = re.search(r"font-size:\s*([\d.]+)px|font:\s*([\d.]+)px", element.attrib.get("style", ""))
            if match:
                sizes.append(float(match.group(1) or match.group(2)))
    assert sizes, f"{svg}: no rotated tick labels found"
    return min(sizes), width


def test_big_report_renders_legibly_in_headless_chromium(big_report, tmp_path):
    figures = big_report.parent / "figures"
    panels = sorted(figures.glob("classes_dsc_*.svg"))
    assert len(panels) >= int(np.ceil(117 / MAX_PER_PANEL))  # 117 classes never share one strip
    browser = chromium()
    url = big_report.resolve().as_uri()
    dom = run_chromium(browser, tmp_path / "profile-dom", "--enable-logging=stderr", "--v=0",
                       f"--window-size={WIDTH},2000", "--virtual-time-budget=10000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stdout[:2000]
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    assert int(attributes["images"]) == 2 + 2 * len(panels)  # Fig. 3 bars and the class panels of both metrics
    assert attributes["images-loaded"] == attributes["images"]
    assert attributes["errors"] == ""
    assert int(attributes["table-boxes"]) >= 4
    assert attributes["overflowing"] == "0" and attributes["page-scroll"] == "0"  # wide tables scroll in their box
    assert attributes["wrapped"] == "0"  # value and interval on one line
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    sizes = json.loads(attributes["image-sizes"].replace("&quot;", '"'))
    rendered = []
    for image in sizes:
        if re.search(r"classes_(dsc|nsd)_\d+\.svg$", image["src"]):
            font, view_width = svg_label_points(big_report.parent / image["src"])
            rendered.append(font * image["width"] / view_width * 72 / 96)  # CSS px per user unit, px -> pt
    assert len(rendered) == 2 * len(panels)
    assert min(rendered) >= LABEL_PT - 0.05, rendered
    print(f"class panels: {len(panels)} per metric; smallest rendered class label {min(rendered):.2f} pt")
    shot = tmp_path / "report.png"
    result = run_chromium(browser, tmp_path / "profile-shot", "--hide-scrollbars", f"--window-size={WIDTH},4000",
                          "--virtual-time-budget=10000", f"--screenshot={shot}", url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("MEDSEG_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report-117-classes.png")
        shutil.copytree(big_report.parent, Path(keep) / "report-117-classes", dirs_exist_ok=True)


def test_small_report_renders_in_headless_chromium(report, tmp_path):
    browser = chromium()
    dom = run_chromium(browser, tmp_path / "profile", f"--window-size={WIDTH},2000", "--virtual-time-budget=8000",
                       "--dump-dom", report.resolve().as_uri())
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom.stdout).group(1)))
    assert attributes["images-loaded"] == attributes["images"] != "0"
    assert attributes["errors"] == "" and attributes["overflowing"] == "0" and attributes["wrapped"] == "0"


def test_pictures_never_pick_a_case_empty_in_both_reference_and_prediction():
    """Under SAT's rule a both-empty case scores 1 and would be the "best" case: it has nothing to show."""
    from bench.views.report.pictures import chosen_cases

    rows = pd.DataFrame({"case_id": ["s1", "s2", "s3"], "dsc": [1.0, 0.9, 0.5],
                         "ref_empty": [True, False, False], "pred_empty": [True, False, False]})
    assert chosen_cases(rows) == [("best (DSC 90.0)", "s2"), ("worst (DSC 50.0)", "s3")]
    assert chosen_cases(rows.iloc[:1]) == []


def test_a_run_sharing_no_case_with_the_first_gets_a_report_that_says_why(tmp_path):
    """A TotalSegmentator run and an AMOS run: no paired test can be made; the page says so, everything else is
    drawn, and the report is complete."""
    from tests.test_tables import write_dataset_run

    ts = write_dataset_run(tmp_path, "ts-run", "TotalSegmentator", {"liver": 0.9, "spleen": 0.8})
    amos = write_dataset_run(tmp_path, "amos-run", "AMOS22_CT", {"liver": 0.99, "spleen": 0.99})
    result = CliRunner().invoke(app, ["report", "--run", str(ts), "--run", str(amos), "--out", str(tmp_path / "r"),
                                      "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "index.html").read_text()
    assert "not drawn: the two runs share no (dataset, case, class)" in page
    assert "Dataset-wise (SAT Table 2 layout)" in page  # the sections after it are drawn


def test_a_report_that_fails_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    from bench.views.report import write as report_write

    runs = write_runs(tmp_path)
    index = write_report(runs, tmp_path / "r", n_boot=20, pictures=0)
    before = {p.relative_to(tmp_path / "r"): p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_write, "_click_sections", broken)
    monkeypatch.setattr(report_write, "_paired_table", broken)
    with pytest.raises(RuntimeError):
        write_report(runs, tmp_path / "r", n_boot=20, pictures=0)
    after = {p.relative_to(tmp_path / "r"): p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    assert after == before and index.is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary folder left
