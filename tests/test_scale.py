"""Scale-out: the same rows from a Dask cluster as from the local executor, nothing lost or doubled when a worker
dies mid-run, one client per run folder, and a consolidated file that Dask itself reads."""

import json
import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench.engine import store
from bench.cli.app import app
from bench.engine.evaluation import evaluate_folders, evaluation_spec
from bench.data.io import read_label_map, write_volume

distributed = pytest.importorskip("distributed")

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])
COLUMNS = ["case_id", "class_name", "dsc", "nsd", "ref_voxels", "pred_voxels"]


def _cases(root, n, shape=(40, 36, 12)):
    rng = np.random.default_rng(0)
    for index in range(n):
        ref = np.zeros(shape, np.uint8)
        ref[5:25, 4:20, 2:9] = 1
        ref[26:34, 22:31, 3:10] = 2
        pred = np.roll(ref, tuple(rng.integers(-2, 3, 3)), axis=(0, 1, 2))
        write_volume(root / "ref" / f"case_{index:03d}.nii.gz", ref, AFFINE)
        write_volume(root / "pred" / f"case_{index:03d}.nii.gz", pred, AFFINE)


def _evaluate(root, out, *extra):
    return CliRunner().invoke(app, [
        "evaluate", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "--out", str(out), "--run", "r",
        "--dataset", "d", "--modality", "CT", "--labels", "1=liver,2=spleen", *extra])


def _rows(out):
    return pd.read_parquet(out / "metrics.parquet")[COLUMNS].sort_values(["case_id", "class_name"]).reset_index(
        drop=True)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_rows(tmp_path):
    _cases(tmp_path, 6)
    local = _evaluate(tmp_path, tmp_path / "local")
    assert local.exit_code == 0, local.output
    dask = _evaluate(tmp_path, tmp_path / "dask", "--executor", "dask", "--workers", "2")
    assert dask.exit_code == 0, dask.output
    pd.testing.assert_frame_equal(_rows(tmp_path / "local"), _rows(tmp_path / "dask"))
    import dask.dataframe as dd

    assert len(dd.read_parquet(str(tmp_path / "dask" / "metrics.parquet")).compute()) == 12
    duckdb = pytest.importorskip("duckdb")
    path = str(tmp_path / "dask" / "metrics.parquet")
    read = duckdb.sql(f"SELECT {', '.join(COLUMNS)} FROM read_parquet('{path}') ORDER BY case_id, class_name").df()
    pd.testing.assert_frame_equal(read, _rows(tmp_path / "dask"), check_dtype=False)
    means = duckdb.sql(f"SELECT class_name, avg(dsc) AS dsc FROM '{path}' GROUP BY class_name ORDER BY 1").df()
    np.testing.assert_allclose(means["dsc"], _rows(tmp_path / "local").groupby("class_name")["dsc"].mean(), rtol=1e-12)


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_and_doubles_nothing(tmp_path):
    _cases(tmp_path, 16, shape=(110, 100, 36))
    classes = {"liver": 1, "spleen": 2}
    spec = evaluation_spec(run="r", model="m", predictions=tmp_path / "pred", classes=classes)
    reference = {"dataset": "d", "modality": "CT", "classes": classes}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.update(result=evaluate_folders(
            tmp_path / "ref", tmp_path / "out", spec, **reference, progress=False, executor="dask",
            scheduler=cluster.scheduler_address)))
        thread.start()
        deadline = time.time() + 240
        while time.time() < deadline and len(store.stored_case_files(tmp_path / "out")) < 2:
            time.sleep(0.05)
        victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, 9)
        thread.join(timeout=600)
    assert not thread.is_alive()
    result = outcome["result"]
    assert not result.errors and result.scored == 16
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert len(table) == 32 and not table.duplicated(["case_id", "class_name"]).any()
    clean = evaluate_folders(tmp_path / "ref", tmp_path / "clean", spec, **reference, progress=False)
    pd.testing.assert_frame_equal(_rows(tmp_path / "out"), clean.table[COLUMNS].sort_values(
        ["case_id", "class_name"]).reset_index(drop=True))


def test_a_second_client_is_refused_and_a_stale_lock_taken_over(tmp_path):
    _cases(tmp_path, 1)
    out = tmp_path / "out"
    with store.run_lock(out):
        busy = _evaluate(tmp_path, out)
        assert busy.exit_code == 2 and f"pid {os.getpid()}" in busy.output and "in use by" in busy.output
    assert not (out / store.LOCK_FILE).exists()
    (out / store.LOCK_FILE).write_text(json.dumps({"host": os.uname().nodename, "pid": 2**22 + 7, "since": "x"}))
    result = _evaluate(tmp_path, out)
    assert result.exit_code == 0, result.output
    assert not (out / store.LOCK_FILE).exists()


@pytest.mark.slow
def test_clicks_on_dask_give_the_local_rows(tmp_path):
    _cases(tmp_path, 3)
    for ref in sorted((tmp_path / "ref").iterdir()):  # an image where each organ is brighter than the body
        volume = read_label_map(ref)
        write_volume(tmp_path / "images" / ref.name.replace(".nii.gz", "_0000.nii.gz"),
                     (volume.array * 100.0).astype(np.float32), volume.affine)
    runs = {}
    for name, extra in (("local", []), ("dask", ["--executor", "dask", "--workers", "2"])):
        result = CliRunner().invoke(app, [
            "clicks", "--modality", "CT", "--model", "region_growing", "--images", str(tmp_path / "images"), "--refs",
            str(tmp_path / "ref"), "--labels", "1=liver,2=spleen", "--n-clicks", "3", "--out", str(tmp_path / name),
            "--run", "r", *extra])
        assert result.exit_code == 0, result.output
        runs[name] = pd.read_parquet(tmp_path / name / "metrics.parquet").sort_values(
            ["case_id", "class_name", "click"]).reset_index(drop=True)[["case_id", "class_name", "click", "dsc", "nsd"]]
    pd.testing.assert_frame_equal(runs["local"], runs["dask"])


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as running:
        yield running


@pytest.mark.slow
def test_dask_aggregation_equals_pandas_on_302k_rows(cluster):
    """SAT-DS test-split scale (`tests.perf aggregate`'s synthetic rows: 302K over 72 datasets, 497 classes), two
    methods, some rows without scores: every level's table from the cluster equals the pandas one."""
    from bench.views.dask_aggregate import dask_scores
    from tests.perf.aggregate import synthetic_key, synthetic_rows, synthetic_terms
    from protocols import aggregate

    rng = np.random.default_rng(7)
    terms = synthetic_terms(rng)
    first = synthetic_rows(rng, terms, 151_000)
    second = first.assign(run="other", dsc=rng.permutation(first["dsc"].to_numpy()))
    second.loc[second.index[::97], ["dsc", "nsd"]] = np.nan
    rows = aggregate.attach_terms(pd.concat([first, second], ignore_index=True), terms, synthetic_key)
    assert len(rows) == 302_000
    expected = aggregate.all_scores(rows)
    with distributed.Client(cluster) as client:
        got = dask_scores(rows, client)
    for level in aggregate.LEVELS:
        assert len(got[level]) == len(expected[level]) > 0
        pd.testing.assert_frame_equal(got[level], expected[level], check_exact=True)
    assert got["overall"]["cases"].tolist() == [len(first[["dataset", "case_id"]].drop_duplicates())] * 2


def test_bench_tables_on_dask_prints_the_local_tables(cluster, tmp_path):
    from tests.test_tables import write_runs

    runs = [f"--run={path}" for path in write_runs(tmp_path)]
    for by in ("region", "dataset", "class"):
        local = CliRunner().invoke(app, ["tables", *runs, "--by", by, "--published", "sat-table1"])
        dask = CliRunner().invoke(app, ["tables", *runs, "--by", by, "--published", "sat-table1", "--executor", "dask",
                                        "--scheduler", cluster.scheduler_address])
        assert local.exit_code == dask.exit_code == 0, dask.output
        assert dask.output == local.output and "model" in local.output


def test_guided_chunks_shrink_to_single_cases_and_keep_the_order():
    from bench.engine.executors import guided_chunks

    chunks = guided_chunks(list(range(40)), slots=2)
    assert [len(c) for c in chunks] == [10, 8, 6, 4, 3, 3, 2, 1, 1, 1, 1]  # ceil(left / 4) each time
    assert sum(chunks, []) == list(range(40))
    assert guided_chunks([], 2) == [] and guided_chunks(["a"], 8) == [["a"]]
