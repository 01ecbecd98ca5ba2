"""The transcribed seed-paper tables, checked against the papers: shapes, hand-copied cells, printed averages
re-derived from the rows, and differences the papers state in their prose."""

from __future__ import annotations

import functools
import re

import pandas as pd
import pytest

from bench.views.published import COLUMNS, list_published, load_published, published_entries

# Half a unit of the last printed digit: a printed mean of 2-decimal values must match within rounding.
ROUNDING = 0.005 + 1e-9

ROWS = {
    "sat-table1": 60,  # 10 regions x 3 methods x 2 metrics
    "sat-table2": 432,  # 72 datasets x 3 methods x 2 metrics
    "sat-table3": 264,  # 44 classes x 3 x 2
    "sat-table4": 276,  # 46 classes x 3 x 2
    "segvol-table1": 100,  # (19 targets + average) x 5 prompt settings
    "segvol-table2": 45,  # 5 methods x (7 dataset groups + 2 averages)
    "segvol-table3": 8,  # 2 methods x (3 datasets + average)
    "segvol-table4": 24,  # 2 mechanisms x 2 classes x (5 prompts + average)
    "sam-med3d-table3": 10,  # 10 printed rows
    "sam-med3d-table4": 80,  # 10 printed rows x 8 columns
}


SAT_TEXT = "SAT_universal_segmentation_text_prompts.txt"
SEGVOL_TEXT, SAMMED3D_TEXT = "SegVol.txt", "SAM-Med3D.txt"
SAT_REGIONS = ["brain", "head and neck", "upper limb", "thorax", "spine", "abdomen", "lower limb", "pelvis",
               "whole body", "lesion"]
SAT_TABLE2_COLUMNS = [(m, x) for m in ("dsc", "nsd") for x in ("nnU-Nets", "SAT-Nano", "SAT-Pro")]
SAT_CLASS_COLUMNS = [(m, x) for m in ("dsc", "nsd") for x in ("nnU-Nets", "SAT-Pro", "SAT-Nano")]
SEGVOL_PROMPTS = ["dsc@text", "dsc@point", "dsc@box", "dsc@point+text", "dsc@box+text", "dsc@average"]
SEGVOL_TABLE2_KEYS = ["BTCV (easy)", "BTCV (hard)", "MSD-lung (hard)", "MSD-spleen (easy)", "MSD-colon (hard)",
                      "MSD-liver (easy)", "MSD-liver (hard)", "average (easy)", "average (hard)"]
SEGVOL_TABLE3_KEYS = ["Lung tumor", "Colon cancer", "Liver tumor", "average"]
SAMMED3D_TABLE4_KEYS = ["A&T", "Bone", "Brain", "Cardiac", "Gland", "Muscle", "Seen", "Unseen"]


def _segvol_method(row: dict) -> list[str]:
    return [row["method"].replace("SegVol", "OURS")]


def _sammed3d_prompt(row: dict) -> list[str]:
    return [row["method"], row["metric"].removeprefix("dsc@").replace("point", " point")]


def _sat_class(row: dict) -> list[str]:
    return [row["modality"].upper(), row["key"]]


# name -> (seed file, columns naming a printed row, column(s) ordering its cells, their printed order,
#          the row's leading text fields)
PRINTED_LAYOUT = {
    "sat-table1": (SAT_TEXT, ["metric", "method"], "key", SAT_REGIONS, lambda r: [r["method"]]),
    "sat-table2": (SAT_TEXT, ["key"], ["metric", "method"], SAT_TABLE2_COLUMNS, lambda r: [r["key"]]),
    "sat-table3": (SAT_TEXT, ["key", "modality"], ["metric", "method"], SAT_CLASS_COLUMNS, _sat_class),
    "sat-table4": (SAT_TEXT, ["key", "modality"], ["metric", "method"], SAT_CLASS_COLUMNS, _sat_class),
    "segvol-table1": (SEGVOL_TEXT, ["key"], "metric", SEGVOL_PROMPTS[:5], lambda r: [r["key"].capitalize()]),
    "segvol-table2": (SEGVOL_TEXT, ["method"], "key", SEGVOL_TABLE2_KEYS, _segvol_method),
    "segvol-table3": (SEGVOL_TEXT, ["method"], "key", SEGVOL_TABLE3_KEYS, _segvol_method),
    "segvol-table4": (SEGVOL_TEXT, ["method", "key"], "metric", SEGVOL_PROMPTS,
                      lambda r: [r["method"].removeprefix("SegVol (").removesuffix(")"), r["key"]]),
    "sam-med3d-table3": (SAMMED3D_TEXT, ["method", "metric"], "key", ["overall"], _sammed3d_prompt),
    "sam-med3d-table4": (SAMMED3D_TEXT, ["method", "metric"], "key", SAMMED3D_TABLE4_KEYS, _sammed3d_prompt),
}


def cell(name: str, method: str, metric: str, key: str, modality: str | None = None) -> float:
    """The one value of a table at (method, metric, key[, modality])."""
    frame = load_published(name)
    hit = frame[(frame.method == method) & (frame.metric == metric) & (frame.key == key)]
    if modality is not None:
        hit = hit[hit.modality == modality]
    assert len(hit) == 1, (name, method, metric, key, modality, len(hit))
    return float(hit.value.iloc[0])


def test_entry_names_and_row_counts():
    assert list_published() == sorted(ROWS)
    assert {name: len(load_published(name)) for name in ROWS} == ROWS
    assert len(published_entries()) == sum(ROWS.values())


def test_unknown_name_lists_known_ones():
    with pytest.raises(KeyError, match="sat-table1.*segvol-table4"):
        load_published("sat-table99")


@pytest.mark.parametrize("name", sorted(ROWS))
def test_tidy_format(name):
    frame = load_published(name)
    assert list(frame.columns) == COLUMNS
    paper = {"sat": "SAT", "segvol": "SegVol", "sam-med3d": "SAM-Med3D"}[name.rsplit("-", 1)[0]]
    assert set(frame.paper) == {paper}
    assert set(frame.table) == {name.rsplit("table", 1)[1]}
    assert frame.caption.nunique() == 1
    assert all(re.fullmatch(r"(dsc|nsd)(@[A-Za-z0-9+]+)?", metric) for metric in frame.metric)
    assert set(frame.modality) <= {"", "ct", "mri", "pet"}
    assert frame.value.between(0, 100).all()
    assert not frame.duplicated(["method", "metric", "level", "key", "modality"]).any()


def test_sat_table1_regions():
    frame = load_published("sat-table1")
    assert set(frame.key) == set(SAT_REGIONS)
    assert frame.groupby(["method", "metric"]).size().to_dict() == {
        (method, metric): 10 for method in ("nnU-Nets", "SAT-Pro", "SAT-Nano") for metric in ("dsc", "nsd")
    }
    assert cell("sat-table1", "nnU-Nets", "dsc", "brain") == 81.93
    assert cell("sat-table1", "SAT-Pro", "dsc", "upper limb") == 91.34
    assert cell("sat-table1", "SAT-Nano", "dsc", "lesion") == 46.04
    assert cell("sat-table1", "nnU-Nets", "nsd", "pelvis") == 76.34
    assert cell("sat-table1", "SAT-Pro", "nsd", "whole body") == 79.61
    assert cell("sat-table1", "SAT-Nano", "nsd", "abdomen") == 67.83


@pytest.mark.parametrize(
    ("metric", "region", "better", "worse", "gap"),
    [  # Sec. 2.1.1: "SAT-Pro ... surpasses nnU-Nets by 5.21 on DSC and 8.27 on NSD" etc.
        ("dsc", "head and neck", "SAT-Pro", "nnU-Nets", 5.21),
        ("nsd", "head and neck", "SAT-Pro", "nnU-Nets", 8.27),
        ("dsc", "upper limb", "SAT-Pro", "nnU-Nets", 2.8),
        ("nsd", "upper limb", "SAT-Pro", "nnU-Nets", 9.28),
        ("dsc", "lower limb", "SAT-Pro", "nnU-Nets", 1.53),
        ("nsd", "lower limb", "SAT-Pro", "nnU-Nets", 2.48),
        ("dsc", "spine", "SAT-Nano", "SAT-Pro", 0.82),
        ("nsd", "spine", "SAT-Nano", "SAT-Pro", 0.81),
    ],
)
def test_sat_table1_matches_prose(metric, region, better, worse, gap):
    diff = cell("sat-table1", better, metric, region) - cell("sat-table1", worse, metric, region)
    assert diff == pytest.approx(gap, abs=1e-6)


def test_sat_table2_datasets():
    frame = load_published("sat-table2")
    assert frame.groupby(["method", "metric"]).key.nunique().eq(72).all()
    assert frame.groupby(["method", "metric"]).size().eq(72).all()
    assert not frame.key.str.contains(r"\[").any()  # citation markers stripped
    assert {"AbdomenCT1K", "MM-WHS MR", "MRSpineSeg", "TS V2", "WORD"} <= set(frame.key)
    assert cell("sat-table2", "nnU-Nets", "dsc", "AbdomenCT1K") == 95.09
    assert cell("sat-table2", "SAT-Nano", "dsc", "BrainPTM") == 64.62
    assert cell("sat-table2", "SAT-Pro", "dsc", "FUMPE") == 22.19
    assert cell("sat-table2", "nnU-Nets", "nsd", "MyoPS2020") == 14.11
    assert cell("sat-table2", "SAT-Nano", "nsd", "SegRap2023 Task 1") == 86.51
    assert cell("sat-table2", "SAT-Pro", "nsd", "WORD") == 77.48
    assert cell("sat-table2", "SAT-Pro", "dsc", "MM-WHS MR") == 86.65
    assert cell("sat-table2", "SAT-Nano", "dsc", "MRSpineSeg") == 73.56


def test_sat_tables3_4_classes():
    for name, classes in (("sat-table3", 44), ("sat-table4", 46)):
        frame = load_published(name)
        assert frame.groupby(["method", "metric"]).size().eq(classes).all()
        assert frame.note.str.fullmatch(r"region: \S.*").all()
    assert cell("sat-table3", "nnU-Nets", "dsc", "Adrenal gland", "ct") == 84.72
    assert cell("sat-table3", "SAT-Nano", "nsd", "Spleen", "mri") == 60.42
    assert cell("sat-table3", "SAT-Pro", "dsc", "Thoracic vertebrae", "mri") == 53.75
    assert cell("sat-table3", "SAT-Nano", "dsc", "Prostate", "mri") == 73.28
    assert cell("sat-table4", "SAT-Pro", "dsc", "Brain", "ct") == 98.03
    assert cell("sat-table4", "nnU-Nets", "nsd", "Brain", "mri") == 37.75
    assert cell("sat-table4", "SAT-Nano", "dsc", "Thyroid gland", "ct") == 41.3
    assert cell("sat-table4", "SAT-Pro", "nsd", "Tumor", "pet") == 56.3
    # Sec. 2.1.2: liver (+2.15 on DSC & +1.43 on NSD), pancreas (+0.83 & +2.76), SAT-Pro over nnU-Nets.
    for target, dsc_gap, nsd_gap in (("Liver", 2.15, 1.43), ("Pancreas", 0.83, 2.76)):
        for metric, gap in (("dsc", dsc_gap), ("nsd", nsd_gap)):
            pro, nnunet = (cell("sat-table3", method, metric, target, "ct") for method in ("SAT-Pro", "nnU-Nets"))
            assert pro - nnunet == pytest.approx(gap, abs=1e-6)


def test_segvol_table1_average_row():
    frame = load_published("segvol-table1")
    organs = frame[frame.level == "organ"]
    assert organs.key.nunique() == 19
    printed = frame[frame.level == "overall"].set_index("metric").value
    derived = organs.groupby("metric").value.mean()
    assert (derived - printed).abs().max() <= ROUNDING
    assert cell("segvol-table1", "SegVol", "dsc@box+text", "Liver") == 96.13
    assert cell("segvol-table1", "SegVol", "dsc@text", "Hip") == 70.22
    assert cell("segvol-table1", "SegVol", "dsc@point+text", "Adrenal") == 48.23
    # Sec. 2.2: box+text is 5.85 over text, point+text 4.62 over point, on average.
    assert printed["dsc@box+text"] - printed["dsc@text"] == pytest.approx(5.85, abs=1e-6)
    assert printed["dsc@point+text"] - printed["dsc@point"] == pytest.approx(4.62, abs=1e-6)


def test_segvol_table2_average_columns():
    frame = load_published("segvol-table2")
    assert set(frame.method) == {"nnFormer", "SwinUNETR", "3DUX-Net", "nnU-Net v2", "SegVol"}
    frame = frame.assign(split=frame.key.str.extract(r"\((easy|hard)\)$")[0])
    derived = frame[frame.level == "dataset"].groupby(["method", "split"]).value.mean()
    printed = frame[frame.level == "difficulty"].set_index(["method", "split"]).value
    assert len(derived) == len(printed) == 10
    assert (derived - printed).abs().max() <= ROUNDING
    assert cell("segvol-table2", "SwinUNETR", "dsc", "BTCV (hard)") == 25.72
    assert cell("segvol-table2", "nnU-Net v2", "dsc", "MSD-spleen (easy)") == 97.27
    assert cell("segvol-table2", "SegVol", "dsc", "average (easy)") == 94.98
    # Sec. 2.3: SegVol's hard-category average is 14.76 above nnU-Net's.
    segvol, nnunet = (cell("segvol-table2", m, "dsc", "average (hard)") for m in ("SegVol", "nnU-Net v2"))
    assert segvol - nnunet == pytest.approx(14.76, abs=1e-6)


def test_segvol_table3_average_and_table2_agree():
    frame = load_published("segvol-table3")
    lesions = frame[frame.level == "class"]
    printed = frame[frame.level == "overall"].set_index("method").value
    assert (lesions.groupby("method").value.mean() - printed).abs().max() <= ROUNDING
    # Sec. 2.4: SegVol exceeds nnU-Net by 19.58 on average.
    assert printed["SegVol"] - printed["nnU-Net v2"] == pytest.approx(19.58, abs=1e-6)
    for row in lesions.itertuples():  # the same lesion numbers are printed in Table 2's hard columns
        dataset = row.note.removeprefix("dataset: ").split(";")[0]
        assert cell("segvol-table2", row.method, "dsc", f"{dataset} (hard)") == row.value


def test_segvol_table4_average_column():
    frame = load_published("segvol-table4")
    prompts = frame[frame.metric != "dsc@average"].groupby(["method", "key"]).value.mean()
    printed = frame[frame.metric == "dsc@average"].set_index(["method", "key"]).value
    assert len(printed) == 4
    assert (prompts - printed).abs().max() <= ROUNDING
    assert cell("segvol-table4", "SegVol (Resize)", "dsc@box", "Liver tumor") == 50.67
    assert cell("segvol-table4", "SegVol (Zoom-out-zoom-in)", "dsc@point", "Liver") == 87.92
    # Sec. 4 ablation: zoom-out-zoom-in adds 6.07 on liver and 21.32 on liver tumor.
    for key, gap in (("Liver", 6.07), ("Liver tumor", 21.32)):
        gain = printed["SegVol (Zoom-out-zoom-in)", key] - printed["SegVol (Resize)", key]
        assert gain == pytest.approx(gap, abs=1e-6)


def test_sam_med3d_tables():
    overall = load_published("sam-med3d-table3").set_index(["method", "metric"]).value
    assert overall["SAM-Med3D", "dsc@10points"] == 60.94
    assert overall["SAM-Med2D", "dsc@5Npoints"] == 55.10
    # Sec. 5.2.1: with N points SAM is 25.74 below SAM-Med2D; SAM-Med3D (1 point) is 32.90 above SAM.
    assert overall["SAM-Med2D", "dsc@Npoints"] - overall["SAM", "dsc@Npoints"] == pytest.approx(25.74, abs=1e-6)
    assert overall["SAM-Med3D", "dsc@1point"] - overall["SAM", "dsc@Npoints"] == pytest.approx(32.90, abs=1e-6)
    frame = load_published("sam-med3d-table4")
    assert frame.groupby("level").key.unique().map(list).to_dict() == {
        "structure": ["A&T", "Bone", "Brain", "Cardiac", "Gland", "Muscle"], "lesion": ["Seen", "Unseen"]}
    assert cell("sam-med3d-table4", "SAM", "dsc@3Npoints", "Cardiac") == 4.84
    assert cell("sam-med3d-table4", "SAM-Med3D", "dsc@10points", "Unseen") == 48.44
    assert cell("sam-med3d-table4", "SAM-Med2D", "dsc@5Npoints", "Unseen") == 47.66
    # Sec. 5.2.2: one SAM-Med3D point beats SAM-Med2D's N points on structures by at most 17.71.
    structures = frame[frame.level == "structure"].set_index(["method", "metric", "key"]).value.sort_index()
    boost = structures["SAM-Med3D", "dsc@1point"] - structures["SAM-Med2D", "dsc@Npoints"]
    assert boost.max() == pytest.approx(17.71, abs=1e-6)


def test_published_entries_concatenates_all():
    frame = published_entries()
    assert isinstance(frame, pd.DataFrame)
    assert frame.groupby("paper").size().to_dict() == {"SAT": 1032, "SegVol": 177, "SAM-Med3D": 90}


@functools.cache
def _printed_lines(path) -> list[tuple[str, tuple[float, ...]]]:
    """Each text line as (tab-delimited fields with markup and citations removed, its numeric fields)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = [re.sub(r"<u>|</u>|\s*\[\d+\]", "", field).strip() for field in line.split("\t")]
        numbers = tuple(float(field) for field in fields if re.fullmatch(r"\d+(\.\d+)?", field))
        lines.append(("\t" + "\t".join(fields) + "\t", numbers))
    return lines


@pytest.mark.parametrize("name", sorted(PRINTED_LAYOUT))
def test_every_row_is_printed_in_the_paper(name, shared_dir):
    """Each transcribed row, in printed column order, is the tail of a line of the seed text naming that row."""
    seed, row_columns, cell_columns, order, leading = PRINTED_LAYOUT[name]
    path = shared_dir / "seeds" / seed
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    lines = _printed_lines(path)
    for row, cells in load_published(name).groupby(row_columns):
        row = dict(zip(row_columns, row))
        values = tuple(cells.set_index(cell_columns).value.reindex(order))
        label = "\t" + "\t".join(leading(row)) + "\t"
        assert any(label in text and numbers[-len(values):] == values for text, numbers in lines), (row, values)


def test_every_packaged_paper_records_the_grid_it_scored_on():
    """SAT scores in SAT-DS space, SegVol on the raw voxel grid, SAM-Med3D on 1.5 mm crops (README, Scoring grids)."""
    from bench.views.published import PAPER_GRIDS, paper_grid

    papers = set(published_entries()["paper"])
    assert papers <= set(PAPER_GRIDS)
    assert (paper_grid("SAT"), paper_grid("SegVol"), paper_grid("SAM-Med3D")) == ("satds", "native", "sammed3d-1.5mm")
    assert paper_grid("Someone else") == "unknown"


def test_bench_tables_prints_a_published_table_alone_with_numbers_intact():
    import io

    from typer.testing import CliRunner

    from bench.cli.app import app

    result = CliRunner().invoke(app, ["tables", "--published", "sat-table1", "--format", "csv"])
    assert result.exit_code == 0, result.output
    printed = pd.read_csv(io.StringIO(result.stdout)).set_index("key")
    rows = load_published("sat-table1")
    for row in rows.dropna(subset=["value"]).itertuples():
        assert printed.loc[row.key, f"{row.method} {row.metric}"] == row.value
