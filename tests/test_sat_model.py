"""SAT-Nano behind the model interface, as a user runs it: `bench models verify` and `bench run --protocol sat`.

Checkpoints are written in the official layouts (SAT:train/trainer.py:246-253: `model_state_dict` of a DDP
model, `module.` keys, deep-supervision heads, optimizer state; the text encoder's own file with transformers
4.21.3's `position_ids`) with parity weights. Oracles: the file's SHA-256 and the official parameter counts;
the prediction recomputed from the lower pieces (SAT-DS preprocessing, `encode_prompts`, `predict_volume`,
`from_sat`), each proven against the official code in test_sat_network.py / test_sat_inference.py; DSC by hand.
The run uses a small window (the `window` test knob) on a crop of the real CT so it fits a CPU.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("positional_encodings")

from typer.testing import CliRunner

import bench.engine.runner as runner
from bench.cli.app import app
from bench.data.io import read_label_map, read_volume, write_volume
from bench.engine.preprocess import from_sat, preprocess
from models.base import Image, Target, recorded_phases
from models.checkpoints import load_state_dict
from models.parity import parity_state_dict
from models.registry import describe, get_model
from models.sat.inference import encode_prompts, predict_volume
from models.sat.network import NANO, SATNetwork
from models.sat.text import SATTextEncoder, SATTokenizer
from models.sat.weights import TEXT_LAYOUT

GOLDENS = Path(__file__).parent / "goldens"
WINDOW = "64,64,32"  # test knob: the official window is 288 x 288 x 96
CLASSES = {"liver": 5, "kidney_left": 3}  # TotalSegmentator values in seg_total.nii.gz
SAT_TERMS = {"liver": "liver", "kidney_left": "left kidney"}  # the runner prompts with SAT's unified terms
CROP = (slice(30, 51), slice(28, 49), slice(None))  # native voxels holding part of both: one SAT window


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """nano.pth and text.pth in the official layouts, parity weights, and the tiny tokenizer folder."""
    folder = tmp_path_factory.mktemp("sat")
    with torch.device("meta"):
        training, text = SATNetwork(NANO, deep_supervision=True), SATTextEncoder()
    network = {f"module.{k}": v for k, v in parity_state_dict(training).items()}
    torch.save({"step": 1000, "model_state_dict": network,
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}},
               folder / "nano.pth")
    encoder = {f"module.{k}": v for k, v in parity_state_dict(text).items()}
    encoder["module.text_tower.biolord.embeddings.position_ids"] = torch.arange(514)[None]
    torch.save({"step": 1000, "model_state_dict": encoder}, folder / "text.pth")
    tokenizer = folder / "tokenizer"
    tokenizer.mkdir()
    vocab = [str(v) for v in np.load(GOLDENS / "sat_text.npz")["vocab"]] + ["right", "_"]
    (tokenizer / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (tokenizer / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "MPNetTokenizer",
                                                                 "do_lower_case": True}))
    return folder


@pytest.fixture(autouse=True)
def fresh_models():
    runner.PROCESS_MODELS.clear()
    yield
    runner.PROCESS_MODELS.clear()


def model_args(folder: Path) -> list[str]:
    return ["--model-args", f"text_encoder={folder / 'text.pth'}", "--model-args", f"tokenizer={folder / 'tokenizer'}",
            "--model-args", f"window={WINDOW}", "--model-args", "trust_tokenizer=true"]  # tiny: not BioLORD's


def test_registry_builds_both_sizes_with_the_official_parameter_counts():
    # the official inference network (deep_supervision=False, SAT:evaluate/params.py:141-145), models_spec.md 1.1
    assert describe("sat-nano")["parameters"] == 109_194_624 and describe("sat-pro")["parameters"] == 475_561_344
    info = describe("sat-nano")
    assert info["prompts"] == ["text"] and info["input_grid"] == "satds" and info["devices"] == ["cpu", "cuda"]
    with torch.device("meta"):
        assert get_model("sat-nano", window=WINDOW).network.image_size == (64, 64, 32)
        assert get_model("sat-pro").network.image_size == (288, 288, 96)
        for bad, message in (("100,64,64", "multiple of 32"), ("64,64", "three positive sizes")):
            with pytest.raises(ValueError, match=message):
                get_model("sat-nano", window=bad)
    with pytest.raises(ValueError, match="tokenizer=/nonexistent"):
        get_model("sat-nano", tokenizer="/nonexistent")


def test_models_verify_loads_the_official_layout_strictly(weights, tmp_path):
    path = weights / "nano.pth"
    result = CliRunner().invoke(app, ["models", "verify", "sat-nano", "--checkpoint", str(path)])
    assert result.exit_code == 0, result.output
    assert "loads into sat-nano strictly (109,194,624 parameters)" in result.output
    assert f"sha256: {hashlib.sha256(path.read_bytes()).hexdigest()}" in result.output
    broken = tmp_path / "broken.pth"
    torch.save({"model_state_dict": {"module.backbone.extra.weight": torch.zeros(1)}}, broken)
    result = CliRunner().invoke(app, ["models", "verify", "sat-nano", "--checkpoint", str(broken)])
    assert result.exit_code == 2 and str(broken) in result.output and "missing" in result.output
    assert "1 unexpected: backbone.extra.weight" in result.output and "Traceback" not in result.output


def test_both_networks_are_in_eval_mode_as_built_and_as_loaded(weights):
    """Not only on the runner's path: the model a caller gets from the registry, and after `load_checkpoint`."""
    model = get_model("sat-nano", text_encoder=str(weights / "text.pth"), window=WINDOW)
    modules = lambda: [m for network in (model.network, model.text_network) for m in network.modules()]  # noqa: E731
    assert not any(m.training for m in modules())
    model.network.train(), model.text_network.train()
    model.load_checkpoint(str(weights / "nano.pth"))
    assert not any(m.training for m in modules())


def ready_model(weights: Path, **options):
    model = get_model("sat-nano", text_encoder=str(weights / "text.pth"), tokenizer=str(weights / "tokenizer"),
                      **options)
    return model.load_checkpoint(str(weights / "nano.pth")).to("cpu")


def test_one_backbone_pass_per_window_batch_for_all_classes_and_each_name_encoded_once(weights):
    model = ready_model(weights, batch_size=1, window="64,32,32")
    passes, encoded = [], []
    encode = model.network.encode
    model.network.encode = lambda crops: passes.append(len(crops)) or encode(crops)
    model.text_network.register_forward_hook(lambda module, args, out: encoded.append(len(args[0])))
    image = Image(array=np.random.default_rng(0).normal(size=(80, 20, 10)).astype(np.float32),
                  spacing=(1.0, 1.0, 3.0), affine=np.eye(4))
    names = ["liver", "left kidney", "kidney_right"]
    start = time.perf_counter()
    with recorded_phases() as seconds:  # the text encoded, the windows, the threshold
        masks = model.segment(image, [Target(name) for name in names])
    assert all(value > 0 for value in seconds.values()) and sum(seconds.values()) <= time.perf_counter() - start
    assert model.batch_settings() == {"windows_per_pass": 1, "window": [64, 32, 32]}
    assert list(masks) == names and all(m.shape == image.shape and m.dtype == bool for m in masks.values())
    assert passes == [1, 1] and encoded == [3]  # 80 -> 2 windows of 64 (SAT's split), 3 classes, 1 window a pass
    tensors = [*model.network.parameters(), *model.text_network.parameters(), *model.text_network.buffers()]
    assert not any(t.is_meta for t in tensors)  # built on the meta device, everything assigned from the files
    encoder = load_state_dict(SATTextEncoder(), torch.load(weights / "text.pth"), TEXT_LAYOUT)
    expected = encode_prompts(encoder, SATTokenizer.from_folder(weights / "tokenizer"), ["liver", "spleen"], "CT")
    torch.testing.assert_close(model.text_embeddings(["Liver", "spleen"], "CT"), expected, rtol=1e-5, atol=1e-5)
    assert encoded == [3, 1]  # "liver" came from the cache (lower-cased as SAT prompts), "spleen" was new


def test_refuses_to_run_without_its_weights(weights):
    with torch.device("meta"):  # loading assigns the weights: no random initialisation
        model = get_model("sat-nano", window=WINDOW, tokenizer=str(weights / "tokenizer"))
    with pytest.raises(ValueError, match="missing: --checkpoint MODEL.pth, --model-args text_encoder"):
        model.to("cpu")
    model.load_checkpoint(str(weights / "nano.pth"))
    with pytest.raises(ValueError, match="missing: --model-args text_encoder=TEXT_ENCODER.pth$"):
        model.to("cpu")


@pytest.fixture(scope="module")
def dataset(shared_dir, tmp_path_factory):
    """Dataset993_SATExample: a crop of the real CT with its liver and left kidney (nnU-Net raw layout)."""
    source = shared_dir / "data" / "totalsegmentator_example"
    ct, seg = read_volume(source / "ct.nii.gz"), read_label_map(source / "seg_total.nii.gz")
    affine = ct.affine.copy()
    affine[:3, 3] = ct.affine[:3, :3] @ [CROP[0].start, CROP[1].start, 0] + ct.affine[:3, 3]
    labels = np.zeros(seg.array[CROP].shape, np.uint8)
    for new, value in enumerate(CLASSES.values(), 1):
        labels[seg.array[CROP] == value] = new
    root = tmp_path_factory.mktemp("raw") / "Dataset993_SATExample"
    write_volume(root / "imagesTs" / "ct_0001_0000.nii.gz", ct.array[CROP], affine)
    write_volume(root / "labelsTs" / "ct_0001.nii.gz", labels, affine)
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "file_ending": ".nii.gz", "numTest": 1,
        "labels": {"background": 0, **{name: i for i, name in enumerate(CLASSES, 1)}}}))
    return root


@pytest.mark.slow
def test_bench_run_sat_nano_under_the_sat_protocol(weights, dataset, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--model", "sat-nano", "--protocol", "sat", "--root", str(dataset), "--dataset", "SATExample",
            "--checkpoint", str(weights / "nano.pth"), *model_args(weights), "--device", "cpu", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ran 1 case(s), 0 already stored" in result.output and "device cpu" in result.output
    rows = pd.read_parquet(out / "metrics.parquet").set_index("class_name")
    names = sorted(rows.index)
    assert len(names) == 2 and set(rows.grid) == {"satds"} and set(rows.protocol) == {"sat"}
    provenance = json.loads((out / "run.json").read_text())["model_provenance"]
    assert provenance["parameters"] == 109_194_624
    assert provenance["sha256"] == hashlib.sha256((weights / "nano.pth").read_bytes()).hexdigest()

    # the oracle: the same case through the proven pieces, by hand (the run's loaded networks and tokenizer)
    (model,) = runner.PROCESS_MODELS.models()
    image = read_volume(dataset / "imagesTs" / "ct_0001_0000.nii.gz")
    labels = read_label_map(dataset / "labelsTs" / "ct_0001.nii.gz")
    terms = [SAT_TERMS[name] for name in CLASSES]
    refs = {term: (labels.array == i).astype(np.uint8) for i, term in enumerate(terms, 1)}
    sat = preprocess(image, "ct", refs)
    assert names == sorted(terms)
    queries = encode_prompts(model.text_network, model.tokenizer, terms, "CT")
    expected = predict_volume(model.network, queries, sat.image) > 0.5
    assert 0 < expected.mean() < 1  # not a constant mask
    for name, mask in zip(terms, expected):
        reference = sat.masks[name].astype(bool)
        dsc = 2 * np.count_nonzero(mask & reference) / (np.count_nonzero(mask) + np.count_nonzero(reference))
        assert rows.loc[name, "dsc"] == pytest.approx(dsc, abs=1e-9)
        assert rows.loc[name, "pred_voxels"] == np.count_nonzero(mask)
        stored = nib.load(out / "predictions" / "ct_0001" / f"{name}.nii.gz")
        assert np.allclose(stored.affine, labels.affine) and stored.shape == labels.array.shape
        assert np.array_equal(np.asarray(stored.dataobj).astype(bool), from_sat(sat.transform, mask.astype(np.uint8))
                              .astype(bool))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "ran 0 case(s), 1 already stored" in again.output
