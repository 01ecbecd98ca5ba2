"""A preset `include:` of a base (the base's fields with the child's over them, sections merged field by field)
and its `version`, which run.json records so a changed preset changes the comparability key."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.cli.app import app
from bench.data.io import write_volume
from bench.engine.presets import load_protocol
from protocols.protocol import ProtocolError, merge_include


def test_a_child_changes_only_what_it_names(tmp_path):
    child = tmp_path / "harness-3.yaml"
    child.write_text("include: harness\nname: harness-3\nversion: 2\nprompts: {n_clicks: 3}\n")
    base, derived = load_protocol("harness"), load_protocol(child)
    assert (derived.name, derived.version, derived.prompts.n_clicks) == ("harness-3", 2, 3)
    assert derived.prompts.clicks == base.prompts.clicks and derived.prompts.seed == base.prompts.seed
    assert derived.space == base.space and derived.scoring == base.scoring and derived.rules == base.rules


def test_include_chains_resolve_relative_to_the_preset_and_loops_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("include: harness\nname: a\nscoring: {tolerance_mm: 2.0}\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\nname: b\nprompts: {n_clicks: 2}\n")
    b = load_protocol(tmp_path / "b.yaml")
    assert (b.name, b.scoring.tolerance_mm, b.prompts.n_clicks) == ("b", 2.0, 2)
    (tmp_path / "c.yaml").write_text("include: d.yaml\nname: c\n")
    (tmp_path / "d.yaml").write_text("include: c.yaml\nname: d\n")
    with pytest.raises(ProtocolError, match="loops back"):
        load_protocol(tmp_path / "c.yaml")
    with pytest.raises(ProtocolError, match="own `name`"):
        merge_include({"name": "base"}, {"include": "base"})


@pytest.mark.parametrize("version", [0, -1, "2", 1.5, True])
def test_a_version_is_a_whole_number_from_1(tmp_path, version):
    preset = tmp_path / "p.yaml"
    preset.write_text(f"include: harness\nname: p\nversion: {json.dumps(version)}\n")
    with pytest.raises(ProtocolError, match="version must be a whole number"):
        load_protocol(preset)


def test_run_json_records_the_version_and_a_bumped_version_is_another_run(tmp_path):
    images, refs = tmp_path / "images", tmp_path / "refs"
    images.mkdir(), refs.mkdir()
    label = np.zeros((16, 16, 8), np.uint8)
    label[4:12, 4:12, 2:6] = 1
    write_volume(images / "case_0000.nii.gz", label.astype(np.float32), np.eye(4))
    write_volume(refs / "case.nii.gz", label, np.eye(4))
    preset = tmp_path / "mine.yaml"
    preset.write_text("include: harness\nname: mine\nprompts: {n_clicks: 2}\n")
    out = tmp_path / "run"
    args = ["run", "--model", "oracle", "--images", str(images), "--refs", str(refs), "--labels", "1=cube",
            "--modality", "CT", "--protocol", str(preset), "--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads((out / "run.json").read_text())["protocol"]["version"] == 1
    preset.write_text("include: harness\nname: mine\nversion: 2\nprompts: {n_clicks: 2}\n")
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "different settings (protocol.version)" in again.output, again.output


def test_an_unknown_include_names_the_including_file(tmp_path):
    preset = tmp_path / "bad.yaml"
    preset.write_text("include: nothere\nname: bad\n")
    with pytest.raises(ProtocolError, match=r"bad\.yaml: include: unknown protocol 'nothere'"):
        load_protocol(preset)
