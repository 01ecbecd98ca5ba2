"""SAT-Nano/Pro network and text tower against the official code.

Oracles: the official state-dict manifests (shared/reference/official_models/SAT-*.json, measured from
zhaoziheng/SAT), the official parameter counts, and goldens the official code computed under parity weights
(tests/goldens/sat_*.npz, made by tests/goldens/make_sat_goldens.py).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("positional_encodings")

from models.parity import load_parity_weights, parity_state_dict
from models.sat.inference import encode_prompts
from models.sat.network import NANO, PRO, SATNetwork
from models.sat.text import SATTextEncoder, SATTokenizer
from models.checkpoints import CheckpointError, load_state_dict
from models.sat.weights import NETWORK_LAYOUT, TEXT_LAYOUT

GOLDENS = Path(__file__).parent / "goldens"
MANIFESTS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "official_models"


def manifest(name: str) -> dict[str, list[int]]:
    path = MANIFESTS / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text())["state_dict"]


def shapes(module: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(key, list(value.shape)) for key, value in module.state_dict().items()]


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("config, name", [(NANO, "SAT-Nano"), (PRO, "SAT-Pro")])
def test_network_keys_and_shapes_equal_official_manifest(config, name):
    official = manifest(name)
    with torch.device("meta"):
        training, inference = SATNetwork(config, deep_supervision=True), SATNetwork(config)
    assert shapes(training) == list(official.items())  # same keys, shapes and order, both conv aliases
    assert dict(shapes(inference)) == {k: v for k, v in official.items() if not k.startswith("mid_mask_embed_proj")}
    assert training.pos_embedding.device.type == "cpu" and training.pos_embedding.shape == (243, 1, 768)


def test_text_encoder_keys_and_shapes_equal_official_manifest():
    official = manifest("SAT-TextEncoder")
    with torch.device("meta"):
        encoder = SATTextEncoder()
    legacy = "text_tower.biolord.embeddings.position_ids"  # a persistent buffer only in transformers 4.21.3
    assert shapes(encoder) == [(k, v) for k, v in official.items() if k != legacy]


@pytest.mark.parametrize("build, expected", [
    (lambda: SATNetwork(NANO, deep_supervision=True), 110_277_568), (lambda: SATNetwork(NANO), 109_194_624),
    (lambda: SATNetwork(PRO, deep_supervision=True), 477_087_360), (lambda: SATNetwork(PRO), 475_561_344),
    (SATTextEncoder, 110_670_720)])
def test_parameter_counts_equal_official(build, expected):
    with torch.device("meta"):
        assert n_parameters(build()) == expected


def test_official_checkpoint_layout_loads_and_mismatches_are_listed():
    with torch.device("meta"):
        training = SATNetwork(NANO, deep_supervision=True)
        network = SATNetwork(NANO)
    checkpoint = {f"module.{k}": v for k, v in training.state_dict().items()}
    load_state_dict(network, checkpoint, NETWORK_LAYOUT)  # DS heads dropped
    load_state_dict(training, checkpoint, NETWORK_LAYOUT)  # or kept
    assert not network.training and not training.training  # a loaded network is in eval mode
    broken = dict(checkpoint)
    del broken["module.mask_embed_proj.2.bias"]
    broken["module.extra.weight"] = torch.zeros(1)
    broken["module.projection_layer.0.weight"] = torch.zeros(768, 3584)
    with pytest.raises(CheckpointError) as error:
        load_state_dict(network, broken, NETWORK_LAYOUT)
    message = str(error.value)
    assert "1 missing: mask_embed_proj.2.bias" in message and "1 unexpected: extra.weight" in message
    assert "projection_layer.0.weight: checkpoint (768, 3584), network (768, 1792)" in message


def test_each_file_drops_exactly_what_the_official_loader_drops():
    """zhaoziheng/SAT@5676be5: the text-encoder loader filters `atlas_tower` and `temperature` entries out of
    its own file (model/text_encoder.py:64-65); the vision checkpoint has no such filter, and its only entries
    beyond the inference network are the deep-supervision heads, which the inference network
    (deep_supervision=False) does not have (build_model.py:52-61 partial load). Each rule holds for its own
    file only: a pre-training leftover in the vision file, or a head in the text file, is an error."""
    with torch.device("meta"):
        training, network, text = SATNetwork(NANO, deep_supervision=True), SATNetwork(NANO), SATTextEncoder()
    vision = {f"module.{k}": v for k, v in training.state_dict().items()}
    tower = {f"module.{k}": v for k, v in text.state_dict().items()}
    leftovers = {"module.temperature": torch.ones(()), "module.atlas_tower.encoder.weight": torch.ones(2)}
    with torch.device("meta"):
        load_state_dict(SATTextEncoder(), {**tower, **leftovers}, TEXT_LAYOUT)  # dropped as the official code does
    for leftover, value in leftovers.items():
        with torch.device("meta"), pytest.raises(CheckpointError, match=f"1 unexpected: {leftover[7:]}"):
            load_state_dict(SATNetwork(NANO), {**vision, leftover: value}, NETWORK_LAYOUT)
    head = {k: v for k, v in vision.items() if k.startswith("module.mid_mask_embed_proj.")}
    with torch.device("meta"), pytest.raises(CheckpointError, match=f"{len(head)} unexpected: mid_mask_embed_proj"):
        load_state_dict(SATTextEncoder(), {**tower, **head}, TEXT_LAYOUT)
    assert len(head) == 12 and not any(k.startswith("mid_mask_embed_proj") for k in network.state_dict())


@pytest.fixture(scope="module")
def network_golden():
    return np.load(GOLDENS / "sat_network.npz")


@pytest.fixture(scope="module")
def parity_nano(network_golden):
    """Nano at the golden's window with parity weights, loaded the official way (module. prefix, DS heads)."""
    window = tuple(int(n) for n in network_golden["window"])
    with torch.device("meta"):
        training = SATNetwork(NANO, image_size=window, deep_supervision=True)
    checkpoint = {f"module.{k}": v for k, v in parity_state_dict(training).items()}
    network = SATNetwork(NANO, image_size=window)
    load_state_dict(network, checkpoint, NETWORK_LAYOUT)
    return network


def close(actual: torch.Tensor, expected: np.ndarray, rtol: float = 1e-4) -> None:
    """Relative tolerance against the golden's own scale (a faithful rewrite differs by ~1e-6 of it)."""
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.slow  # ~20 s on two CPU cores (SAT-Nano forward pass)
def test_nano_forward_matches_official_golden(parity_nano, network_golden):
    g = network_golden
    image = torch.randn([int(n) for n in g["logits_shape"][:1]] + [3, *g["window"]],
                        generator=torch.Generator().manual_seed(int(g["image_seed"])))
    queries = torch.from_numpy(g["queries"])
    with torch.no_grad():
        features = parity_nano.encode(image)
        decoded = parity_nano.decode(queries, features)
        logits = parity_nano.logits(parity_nano.mask_embed_proj(decoded).transpose(0, 1), features)
        single = parity_nano(queries[:1], image)
    s = int(g["logit_stride"])
    np.testing.assert_array_equal(features.pos.numpy(), g["pos_embedding"])
    close(features.tokens, g["image_tokens"])
    close(decoded, g["decoded_queries"])
    assert tuple(logits.shape) == tuple(g["logits_shape"])
    close(logits[:, :, ::s, ::s, ::s], g["logits_strided"])
    # queries never attend to each other: one query alone gives its own slice of the batched logits
    close(single[:, :, ::s, ::s, ::s], g["logits_strided"][:, :1])


def test_wrong_window_is_refused(parity_nano):
    with pytest.raises(ValueError, match="built for windows"):
        parity_nano.encode(torch.zeros(1, 3, 64, 64, 64))
    with pytest.raises(ValueError, match="multiple of 32"):
        SATNetwork(NANO, image_size=(100, 64, 64))


@pytest.fixture(scope="module")
def text_golden():
    return np.load(GOLDENS / "sat_text.npz")


@pytest.fixture()
def tokenizer(text_golden, tmp_path):
    """The golden's tiny WordPiece vocabulary as a local tokenizer folder, as BioLORD-2023-C's is shipped."""
    (tmp_path / "vocab.txt").write_text("\n".join(text_golden["vocab"]) + "\n")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "MPNetTokenizer",
                                                                "do_lower_case": True}))
    return SATTokenizer.from_folder(tmp_path)


def test_tokenisation_equals_official(tokenizer, text_golden):
    ids, mask = tokenizer(list(text_golden["prompts"]))
    np.testing.assert_array_equal(ids.numpy(), text_golden["input_ids"])
    np.testing.assert_array_equal(mask.numpy(), text_golden["attention_mask"])


def test_tokenisation_by_hand(tokenizer):
    vocab = tokenizer.wordpiece.convert_tokens_to_ids
    cls, sep, liver, left, kidney = vocab(["[CLS]", "[SEP]", "liver", "left", "kidney"])
    ids, mask = tokenizer(["Liver", "left kidney"])
    assert ids.tolist() == [[cls, liver, sep, 0], [cls, left, kidney, sep]]  # [CLS]/[SEP] strings, 0-padded
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    ids, mask = SATTokenizer(tokenizer.wordpiece, max_length=3)(["left kidney", "liver"])
    assert ids.tolist() == [[cls, left, sep], [cls, liver, sep]]  # truncated, [SEP] kept last
    with pytest.raises(ValueError, match="at least one class name"):
        tokenizer([])
    with pytest.raises(FileNotFoundError, match="tokenizer folder"):
        SATTokenizer.from_folder(Path("/nonexistent/biolord"))


def test_text_encoder_matches_official_golden(tokenizer, text_golden):
    encoder = SATTextEncoder()
    checkpoint = {f"module.{k}": v for k, v in parity_state_dict(encoder).items()}
    checkpoint["module.text_tower.biolord.embeddings.position_ids"] = torch.arange(514)[None]  # 4.21.3 layout
    load_state_dict(encoder, checkpoint, TEXT_LAYOUT)
    ids, mask = tokenizer(list(text_golden["prompts"]))
    with torch.no_grad():
        embeddings = encoder(ids, mask, torch.from_numpy(text_golden["modalities"]))
    close(embeddings, text_golden["text_embeddings"])
    # SAT's prompting: a class name as given, the scan's modality string (golden prompt 1 is MRI, code 1)
    close(encode_prompts(encoder, tokenizer, ["Left Kidneys"], "MRI T2"), text_golden["text_embeddings"][1:2])


def test_parity_weights_follow_the_recipe():
    layer = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    load_parity_weights(layer)
    generator = torch.Generator().manual_seed(zlib.crc32(b"0.weight"))
    expected = torch.randn((2, 3), generator=generator) / 3 ** 0.5
    assert torch.equal(layer[0].weight.data, expected)
    generator = torch.Generator().manual_seed(zlib.crc32(b"1.weight"))
    assert torch.equal(layer[1].weight.data, 1 + 0.1 * torch.randn(2, generator=generator))
