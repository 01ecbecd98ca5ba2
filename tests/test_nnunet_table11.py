"""SAT Table 11 recomputed from SAT-DS's 72 released plans, against the numbers the paper prints.

Oracles: the paper's Table 11 (transcribed in baselines/nnunet/sat_table11.csv; its caption gives the 2247M total),
and a network really built on CPU (its parameters counted one by one and against its state dict).
"""

from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("nnunetv2")

from baselines.nnunet.table11 import PAPER_TABLE, PAPER_TOTAL_M, count_parameters, paper_rows, recompute
from bench.data.catalog import load_catalog


@pytest.fixture(scope="module")
def rows(satds_dir):
    return {row.dataset: row for row in recompute(satds_dir)}


def test_transcription_covers_the_72_datasets_and_sums_to_the_caption():
    printed = list(csv.DictReader(PAPER_TABLE.open()))
    assert len(printed) == 72
    assert {load_catalog().dataset(r["satds_name"]).name for r in printed} == set(load_catalog().datasets)
    assert sum(int(r["model_size_m"]) for r in printed) == PAPER_TOTAL_M


@pytest.mark.parametrize("dataset, patch, stages, size_m", [
    ("AMOS22_CT", (64, 192, 160), 6, 31),
    ("MSD_Hippocampus", (40, 56, 40), 4, 6),
    ("Brain_Atlas", (112, 128, 112), 5, 17),
    ("MRSpineSeg", (8, 640, 320), 7, 43),
    ("MSD_Prostate", (16, 320, 320), 7, 45),
    ("KiTS23", (128, 128, 128), 6, 31),
])
def test_rows_agree_with_the_paper(rows, dataset, patch, stages, size_m):
    row = rows[dataset]
    paper = paper_rows()[dataset]
    assert row.patch_size == patch == paper["patch_size"]
    assert row.stages == stages == paper["stages"] and row.widths == paper["widths"] and row.depth == paper["depth"]
    assert round(row.size_m) == size_m == paper["size_m"]
    assert not row.differences()


def test_known_differences_and_total(rows):
    assert rows["COVID19"].patch_size == (96, 160, 160) and rows["COVID19"].paper_patch_size == (56, 192, 192)
    assert 43.0 < rows["CMRxMotion"].size_m < 43.2 and rows["CMRxMotion"].paper_size_m == 45
    assert 43.4 < rows["Instance22"].size_m < 43.6 and rows["Instance22"].paper_size_m == 45
    total = sum(row.parameters for row in rows.values()) / 1e6
    assert total == pytest.approx(2232.15, abs=0.01)
    assert abs(total - PAPER_TOTAL_M) / PAPER_TOTAL_M < 0.01


def test_meta_count_equals_a_real_network(satds_dir):
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = satds_dir / "nnunet" / "Dataset045_MSDHippocampus"
    plans, description = (json.loads((folder / f).read_text()) for f in ("nnUNetPlans.json", "dataset.json"))
    counted, _ = count_parameters(plans, description)
    config = PlansManager(plans).get_configuration("3d_fullres")
    network = get_network_from_plans(config.network_arch_class_name, config.network_arch_init_kwargs,
                                     config.network_arch_init_kwargs_req_import, 1, 3, deep_supervision=True)
    assert counted == sum(p.numel() for p in network.parameters())
    assert all(p.device == torch.device("cpu") for p in network.parameters())
    state_numel = sum(t.numel() for t in network.state_dict().values())
    assert state_numel > counted  # decoder.encoder.* aliases: the state dict counts the encoder twice
