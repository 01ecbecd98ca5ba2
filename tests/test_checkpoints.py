"""The checkpoint loader: every official layout loads strictly into a fake torch model, strangers' pickles are
refused without --trust-checkpoint, mismatches are listed readably; the registry builds models on the meta device."""

from __future__ import annotations

import argparse
import collections
import hashlib
import pickle
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.base import Capabilities, CheckpointInfo, Model, Target  # noqa: E402
from models.checkpoints import (  # noqa: E402
    CheckpointError,
    CheckpointLayout,
    DroppedObject,
    extract_state_dict,
    load_checkpoint,
    load_state_dict,
    read_checkpoint,
)
from models.registry import (  # noqa: E402
    ModelUnavailable,
    get_model,
    model_names,
    register_model,
    takes_checkpoint,
    unregister_model,
)


class TinyNet(torch.nn.Module):
    """Official-style submodule names (an encoder and a decoder), one buffer."""

    def __init__(self):
        super().__init__()
        self.image_encoder = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.BatchNorm3d(4))
        self.mask_decoder = torch.nn.Conv3d(4, 1, 1)

    def forward(self, x):
        return self.mask_decoder(self.image_encoder(x))


class FakeTorchModel(Model):
    """A torch-backed model behind the v2 interface: thresholds the network's logits at 0 for every target."""

    name = "fake-torch"
    version = "test-1"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"text"}), accumulates_clicks=False,
                                devices=frozenset({"cpu", "cuda"}), targets_per_call=2)
    checkpoint_info = CheckpointInfo(files=("fake.pth",), download="https://example.org/fake")

    def __init__(self, **options):
        self.network = TinyNet()
        self.calls = 0

    def _segment(self, image, targets, state):
        self.calls += 1
        with torch.no_grad():
            logits = self.network(torch.as_tensor(image.array, dtype=torch.float32)[None, None])[0, 0].numpy()
        return {target.name: logits > 0 for target in targets}


def _trained() -> tuple[TinyNet, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = TinyNet()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.randn(1, 1, 6, 6, 6)).sum().backward()
    optimizer.step()
    return net, optimizer


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _official_layouts(net, optimizer) -> dict[str, object]:
    ddp = {f"module.{k}": v for k, v in net.state_dict().items()}
    return {
        "raw state_dict (SAM)": net.state_dict(),
        "module. prefix in model_state_dict (SAT)": {"step": 3, "model_state_dict": ddp,
                                                     "optimizer_state_dict": optimizer.state_dict()},
        "module. prefix under model (SegVol)": {"model": ddp, "epoch": 2},
        "model + optimizer object (SAM-Med2D)": {"model": net.state_dict(), "optimizer": optimizer},
        "model_state_dict + args Namespace (SAM-Med3D)": {
            "epoch": 1, "model_state_dict": net.state_dict(), "optimizer_state_dict": optimizer.state_dict(),
            "args": argparse.Namespace(crop_size=128, lr=8e-4), "losses": [0.5, 0.25], "used_datas": ["a"]},
    }


@pytest.mark.parametrize("layout", list(_official_layouts(*_trained())))
def test_every_official_layout_loads_strictly_without_trust(tmp_path, layout):
    net, optimizer = _trained()
    path = tmp_path / "ckpt.pth"
    torch.save(_official_layouts(net, optimizer)[layout], path)
    model = FakeTorchModel()
    assert not _same_weights(model.network, net)
    model.load_checkpoint(str(path))
    assert _same_weights(model.network, net)
    provenance = model.provenance()
    assert provenance.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert provenance.checkpoint == str(path) and provenance.version == "test-1"
    assert provenance.parameters == sum(p.numel() for p in net.parameters())


def test_optimizer_object_is_dropped_never_rebuilt(tmp_path):
    net, optimizer = _trained()
    path = tmp_path / "sam_med2d.pth"
    torch.save({"model": net.state_dict(), "optimizer": optimizer, "args": argparse.Namespace(k=1)}, path)
    loaded = read_checkpoint(path)
    assert isinstance(loaded["optimizer"], DroppedObject) and loaded["args"].k == 1


class Payload:
    """A pickled global outside the allow-list; unpickling it runs code (here: sets a flag)."""

    ran = False

    def __reduce__(self):
        return (_payload_ran, ())


def _payload_ran():
    Payload.ran = True
    return "ran"


def test_unexpected_pickled_global_is_refused_without_trust(tmp_path):
    net, _ = _trained()
    path = tmp_path / "stranger.pth"
    torch.save({"model_state_dict": net.state_dict(), "extra": Payload()}, path)
    model = FakeTorchModel()
    with pytest.raises(CheckpointError, match=r"stranger.pth: refused to unpickle the pickled global "
                                              r"\S*test_checkpoints._payload_ran.*--trust-checkpoint"):
        model.load_checkpoint(str(path))
    assert not Payload.ran and model.checkpoint is None
    model.load_checkpoint(str(path), trust=True)
    assert Payload.ran and _same_weights(model.network, net)


def test_plain_pickle_and_garbage_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        read_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pth")
    legacy = tmp_path / "legacy.pkl"
    legacy.write_bytes(pickle.dumps({"weights": collections.Counter("ab")}))
    with pytest.raises(CheckpointError, match="legacy.pkl"):
        read_checkpoint(legacy)


def test_strict_load_lists_missing_unexpected_and_misshaped_keys(tmp_path):
    net, _ = _trained()
    weights = dict(net.state_dict())
    weights.pop("mask_decoder.bias")
    weights["mid_mask_embed_proj.weight"] = torch.zeros(2)
    weights["image_encoder.0.weight"] = torch.zeros(4, 1, 1, 1, 1)
    path = tmp_path / "odd.pth"
    torch.save({"model_state_dict": weights}, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(TinyNet(), path)
    message = str(error.value)
    assert "1 missing: mask_decoder.bias" in message and "1 unexpected: mid_mask_embed_proj.weight" in message
    assert "image_encoder.0.weight: checkpoint (4, 1, 1, 1, 1), network (4, 1, 3, 3, 3)" in message


def test_layout_drops_ignores_checks_and_renames_by_pattern():
    net, _ = _trained()
    weights = {f"module.text_model.{k}": v for k, v in net.state_dict().items()}
    weights["module.text_model.position_ids"] = torch.arange(3)
    weights["module.temperature"] = torch.ones(())
    layout = CheckpointLayout(prefix="module.", drop=("temperature",), unused=(r"position_ids$",),
                              arange=(r"position_ids$",), rename=((r"^text_model\.", ""),))
    kept = sorted(k.removeprefix("module.") for k in weights if "temperature" not in k)
    assert sorted(extract_state_dict({"model": weights}, layout)) == kept  # the file's names, less `drop`
    model = TinyNet().train()
    assert load_state_dict(model, {"model": weights}, layout) is model and not model.training  # eval once loaded
    assert _same_weights(model, net)
    with pytest.raises(CheckpointError, match="text_model.position_ids is not 0..2"):
        load_state_dict(TinyNet(), {"model": {**weights, "module.text_model.position_ids": torch.zeros(3)}}, layout)
    with pytest.raises(CheckpointError, match="1 unexpected: text_model.position_ids$"):  # without `unused`
        load_state_dict(TinyNet(), {"model": weights}, replace(layout, unused=()))
    with pytest.raises(CheckpointError, match="no 'model_state_dict' entry"):
        extract_state_dict({"model": weights}, CheckpointLayout(key="model_state_dict"))


def test_v2_interface_chunks_targets_and_checks_devices():
    model = FakeTorchModel()
    image = np.random.default_rng(0).normal(size=(6, 6, 6)).astype(np.float32)
    from models.base import Image

    masks = model.segment(Image(array=image, spacing=(1.0, 1.0, 1.0), affine=np.eye(4)),
                          [Target(name) for name in "abcde"])
    assert list(masks) == list("abcde") and model.calls == 3  # chunks of targets_per_call = 2
    assert model.to("cpu").device == "cpu"
    with pytest.raises(ValueError, match="runs on cpu, cuda, not 'tpu'"):
        model.to("tpu")


def test_registry_names_lazy_entries_and_meta_construction():
    names = model_names()
    for name in ("sat-nano", "sat-pro", "segvol", "sam-med3d", "sam-med3d-turbo", "sam-vit-b", "sam-vit-l",
                 "sam-vit-h", "sam-med2d", "nninteractive", "nnunet", "region_growing", "oracle"):
        assert name in names
    register_model("fake-torch")(FakeTorchModel)
    try:
        with torch.device("meta"):
            model = get_model("fake-torch")
        assert all(p.is_meta for p in model.network.parameters())
        assert model.provenance().parameters == sum(p.numel() for p in TinyNet().parameters())
        assert sorted(model.network.state_dict()) == sorted(TinyNet().state_dict())
    finally:
        unregister_model("fake-torch")
    for name in names:
        try:
            with torch.device("meta"):
                model = get_model(name)
        except ModelUnavailable as error:
            assert name in str(error) and "not available here" in str(error) or "no factory" in str(error)
            continue
        except ValueError as error:  # a model built from its trained-model folder says so
            assert takes_checkpoint(name) and "checkpoint" in str(error)
            continue
        assert model.capabilities.ndims and model.name
        assert 3 in model.capabilities.ndims  # every registered model takes volumes (2D ones slice-wise)


def test_meta_built_model_loads_a_checkpoint_by_assignment(tmp_path):
    net, _ = _trained()
    path = tmp_path / "ckpt.pth"
    torch.save({"model_state_dict": net.state_dict()}, path)
    with torch.device("meta"):
        model = FakeTorchModel()
    model.load_checkpoint(str(path))
    assert not any(p.is_meta for p in model.network.parameters()) and _same_weights(model.network, net)


def test_registry_names_build_the_published_networks():
    """Parameter counts of the networks each name builds (meta device) equal the official ones
    (models_spec.md sections 4.1 and 4.3): the names map to the right variants."""
    pytest.importorskip("segment_anything")
    from models.registry import describe

    expected = {"sam-vit-b": 93_735_472, "sam-vit-l": 312_342_832, "sam-vit-h": 641_090_608,
                "sam-med2d": 271_241_776}
    for name, count in expected.items():
        info = describe(name)
        assert info["parameters"] == count and info["dimensions"] == [2, 3], name
