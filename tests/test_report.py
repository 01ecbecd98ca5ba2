"""The HTML report: files on disk, and a render in headless Chromium with every figure loaded and no console
message (a screenshot is taken). Without Chromium the render test skips locally and fails under CI=true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.report import write_report
from tests.test_tables import write_click_run, write_runs

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    runs = [*write_runs(folder), write_click_run(folder)]
    out = tmp_path_factory.mktemp("out") / "report"
    return write_report(runs, out, published=["sat-table1", "sat-table3"], n_boot=50)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is missing under CI (.ci/run installs it with apt-get)")
    pytest.skip("chromium is not installed")


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_report_files(report):
    figures = report.parent / "figures"
    for stem in ("regions_dsc", "regions_nsd", "classes_dsc", "classes_nsd", "clicks_dsc", "clicks_nsd"):
        assert (figures / f"{stem}.png").stat().st_size > 0
        assert (figures / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    page = report.read_text()
    for text in ("Leaderboard", "H&amp;N", "nnU-Nets (SAT)", "ct_liver", "AbdomenCT1K", "Run metadata",
                 "Interactive clicks", "DSC vs clicks"):
        assert text in page
    assert "<u>" in page and "[" in page  # best values underlined, bootstrap intervals shown


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = chromium()
    url = report.resolve().as_uri()
    dom = run_chromium(browser, tmp_path / "profile-dom", "--enable-logging=stderr", "--v=0",
                       "--virtual-time-budget=5000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stdout[:2000]
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    assert int(attributes["images"]) == 6
    assert attributes["images-loaded"] == attributes["images"]
    assert attributes["errors"] == ""
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    shot = tmp_path / "report.png"
    result = run_chromium(browser, tmp_path / "profile-shot", "--hide-scrollbars", "--window-size=1280,2400",
                          "--virtual-time-budget=5000", f"--screenshot={shot}", url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
