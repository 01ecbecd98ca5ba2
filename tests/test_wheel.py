"""The project as users install it: a wheel built from the source holds its data files (published tables, catalog,
presets), and `bench demo` and `bench tables --published sat-table1` run from it, away from the source tree."""

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy of the source (an in-tree build would reuse a stale build/ folder)."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"
    shutil.copytree(PROJECT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "runs", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    return next(out.glob("medseg_bench-*.whl"))


def test_wheel_holds_the_data_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    published = {n for n in names if n.startswith("bench/views/published_tables/") and n.endswith(".csv")}
    assert len(published) == len(list((PROJECT / "results" / "published").glob("*.csv"))) >= 10
    assert {"bench/data/catalog/data/datasets.json", "bench/data/catalog/data/terms.json", "bench/data/catalog/label_sets.yaml",
            "bench/data/catalog/curated.yaml", "protocols/presets/harness.yaml"} <= names
    assert not any(n.startswith(("tests/", "results/runs")) for n in names)


@pytest.mark.slow
def test_installed_wheel_runs_demo_and_published_tables(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies come from this interpreter's site-packages; the project itself only from the wheel
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True)
    bench = env_dir / "bin" / "bench"
    where = subprocess.run([str(python), "-c", "import bench; print(bench.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where, where
    tables = subprocess.run([str(bench), "tables", "--published", "sat-table1"], cwd=tmp_path, capture_output=True,
                            text=True)
    assert tables.returncode == 0, tables.stderr
    assert "SAT-Pro" in tables.stdout
    demo = subprocess.run([str(bench), "demo", "--out", str(tmp_path / "demo")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (tmp_path / "demo" / "report" / "index.html").is_file()
