"""Official weights the way users get them (issue 23): the registry models/weights.yaml, `bench models
show|fetch|verify`, the Hugging Face cache, checksums, tokenizer checks, and the offline message.

No network: a hub cache is written in the layout huggingface_hub writes (tests/goldens/hub_cache.py, checked
with `scan_cache_dir`) in the session's private HF_HOME (conftest), and the plain-URL path runs against an
http.server on 127.0.0.1 started here (a cut connection, a resume with Range, a wrong file refused).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

import models.weights as weights
from bench.cli.app import app
from bench.engine.weights import MissingWeights, download_url, fetch, resolve_run_files
from bench.engine.weights import cached as bench_cached
from models.weights import WeightsMismatch, check_tokenizer, hub_cache_dir, model_weights, weight_models


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "goldens"))
from hub_cache import COMMIT, put_hub_file  # noqa: E402


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """A fresh, empty HF_HOME (offline) for one test."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf"


@pytest.fixture
def fake_registry(monkeypatch):
    """Replace the registry by a test one (a model with published sizes and SHA-256s of small files)."""
    def install(entries: dict) -> None:
        monkeypatch.setattr(weights, "_registry", lambda: entries)
    return install


def mpnet_vocabulary(size: int = 30527, swap: bool = False) -> list[str]:
    """A BERT-style vocabulary of `size` tokens (SAT's BioLORD tokenizer has 30527)."""
    tokens = ["<s>", "<pad>", "</s>", "<unk>", "[PAD]", "[CLS]", "[SEP]", "[UNK]", "liver", "spleen", "left", "kidney"]
    tokens += [f"[unused{i}]" for i in range(size - len(tokens))]
    if swap:
        tokens[8], tokens[9] = tokens[9], tokens[8]
    return tokens


def write_tokenizer(folder: Path, tokens: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "MPNetTokenizer",
                                                              "do_lower_case": True}))
    return folder


# --- the registry --------------------------------------------------------------------------------------------

def test_every_model_with_official_weights_is_in_the_registry_with_a_cited_source():
    from models.registry import shipped_entries  # the shipped models; tests register models of their own
    assert set(weight_models()) == set(shipped_entries()) - {"region_growing", "oracle"}
    for name in weight_models():
        entry = model_weights(name)
        assert entry.licence
        for item in entry.files:
            assert item.cited and "@" in item.cited, (name, item.role)  # owner/repo@commit:path:line
            assert item.hub or item.url or item.urls or item.manual, (name, item.role)
    sam = model_weights("sam-vit-b").file_for("checkpoint")
    assert sam.sha256_prefix == "01ec64" and sam.url.endswith("sam_vit_b_01ec64.pth")  # the hash in the name
    assert model_weights("nninteractive").files[0].hub["repo"] == "MIC-DKFZ/nnInteractive"


def test_models_show_names_sources_sizes_checksums_licence_and_the_cache(hf_home):
    result = CliRunner().invoke(app, ["models", "show", "segvol"])
    assert result.exit_code == 0, result.output
    assert "hf://BAAI/SegVol/SegVol_v1.pth" in result.output and "licence: MIT" in result.output
    assert "vocab.json: 862,328 bytes, SHA-256 5047b556" in result.output
    assert result.output.count("cached: no (`bench models fetch segvol`)") == 2


# --- the hub cache -------------------------------------------------------------------------------------------

def test_the_test_hub_cache_is_the_layout_huggingface_hub_scans(hf_home):
    from huggingface_hub import scan_cache_dir

    put_hub_file(hub_cache_dir(), "zzh99/SAT", "Nano/nano.pth", b"weights")
    put_hub_file(hub_cache_dir(), "zzh99/SAT", "Nano/nano_text_encoder.pth", b"text weights")
    info = scan_cache_dir(hub_cache_dir())
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == "zzh99/SAT" and repo.size_on_disk == len(b"weights") + len(b"text weights")
    assert {f.file_name for revision in repo.revisions for f in revision.files} == {"nano.pth",
                                                                                     "nano_text_encoder.pth"}


def test_a_corrupted_cached_file_fails_its_published_checksum(hf_home, fake_registry):
    content = b"official weights"
    fake_registry({"tiny": {"licence": "test", "files": [
        {"role": "checkpoint", "option": "checkpoint", "hub": {"repo": "owner/tiny", "file": "tiny.pth"},
         "sha256": hashlib.sha256(content).hexdigest(), "size": len(content), "cited": "x@y:z:1"}]}})
    path = put_hub_file(hub_cache_dir(), "owner/tiny", "tiny.pth", content)
    entry = model_weights("tiny").files[0]
    assert fetch(entry) == path  # from the cache, offline, verified
    path.resolve().write_bytes(b"official weightz")  # same size, one byte off
    with pytest.raises(WeightsMismatch, match="is not the published"):
        fetch(entry)
    result = CliRunner().invoke(app, ["models", "fetch", "tiny"])
    assert result.exit_code == 2 and "is not the published" in result.output


# --- the plain-URL path --------------------------------------------------------------------------------------

class Server:
    """http.server on 127.0.0.1 serving one payload; the first GET may be cut after `cut` bytes."""

    def __init__(self, payload: bytes, cut: int | None = None):
        self.payload, self.cut, self.ranges = payload, cut, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                start = 0
                if "Range" in self.headers:
                    server.ranges.append(self.headers["Range"])
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                body = server.payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut is not None:
                    body, server.cut = body[:server.cut], None  # drop the connection mid-file, once
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/sam_vit_t_{hashlib.sha256(payload).hexdigest()[:6]}.pth"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_cut_download_resumes_with_range_and_is_renamed_only_when_verified(tmp_path):
    payload = bytes(range(256)) * 4000
    server = Server(payload, cut=300_000)
    target = tmp_path / "cache" / "sam.pth"
    try:
        with pytest.raises(ConnectionError, match="run the same command again to resume"):
            download_url(server.url, target, size=len(payload), sha256=hashlib.sha256(payload).hexdigest()[:6],
                         progress=False)
        assert not target.exists() and target.with_name("sam.pth.incomplete").stat().st_size == 300_000
        download_url(server.url, target, size=len(payload), sha256=hashlib.sha256(payload).hexdigest()[:6],
                     progress=False)
    finally:
        server.close()
    assert server.ranges == ["bytes=300000-"]
    assert target.read_bytes() == payload and not target.with_name("sam.pth.incomplete").exists()


def test_a_wrong_download_is_refused_and_nothing_is_left_in_the_cache(tmp_path):
    server = Server(b"not the published file")
    target = tmp_path / "cache" / "sam.pth"
    try:
        with pytest.raises(WeightsMismatch, match="is not the published one"):
            download_url(server.url, target, sha256="01ec64", progress=False)
    finally:
        server.close()
    assert list(target.parent.iterdir()) == []


def test_models_fetch_downloads_a_url_source_into_the_assets_cache(hf_home, fake_registry, monkeypatch):
    payload = b"\x80\x02weights" * 1000
    server = Server(payload)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    fake_registry({"tiny-sam": {"licence": "test", "files": [
        {"role": "checkpoint", "option": "checkpoint", "url": server.url, "cited": "x@y:z:1",
         "sha256_prefix": hashlib.sha256(payload).hexdigest()[:6]}]}})
    try:
        result = CliRunner().invoke(app, ["models", "fetch", "tiny-sam"])
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    assert "100%" in result.stderr  # progress
    path = Path(result.stdout.strip().removeprefix("checkpoint: "))
    assert path.read_bytes() == payload and hf_home / "assets" / "medseg-bench" in path.parents
    again = CliRunner().invoke(app, ["models", "fetch", "tiny-sam"])  # the server is gone: from the cache
    assert again.exit_code == 0 and again.stdout == result.stdout


# --- offline, before torch -----------------------------------------------------------------------------------

OFFLINE_SCRIPT = """
import io, json, sys, contextlib
from bench.cli.app import app
out = {}
for name in sys.argv[1:]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = app(["models", "fetch", name], standalone_mode=False) or 0  # typer.Exit's code
        except SystemExit as error:
            code = error.code
        except Exception as error:
            code = getattr(error, "exit_code", repr(error))
    out[name] = [code, err.getvalue()]
from bench.engine.weights import MissingWeights, resolve_run_files
try:
    resolve_run_files("sat-nano", None, {}, {"text"})
except MissingWeights as error:
    out["run sat-nano"] = [2, str(error)]
out["torch imported"] = "torch" in sys.modules
print(json.dumps(out))
"""


def test_offline_each_model_says_in_one_line_what_is_missing_and_how_to_fetch_it_before_torch(hf_home):
    names = [n for n in weight_models() if model_weights(n).files]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, *names], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out.pop("torch imported") is False
    sat = out.pop("run sat-nano")[1]
    assert sat.startswith("sat-nano: checkpoint (hf://zzh99/SAT/Nano/nano.pth) is needed") and \
        "bench models fetch sat-nano" in sat
    for name in names:
        code, message = out[name]
        entry = model_weights(name).files[0]
        assert code == 2 and message.count("\n") == 1, (name, message)  # one line
        assert message.startswith(f"error: {name}: ") and entry.source() in message, (name, message)
        assert (f"`bench models verify {name} --checkpoint PATH`" if entry.manual else
                f"`bench models fetch {name}`") in message, message


# --- runs: references, defaults, tokenizers, run.json ------------------------------------------------------

def test_another_bert_vocabulary_is_refused_as_sats_tokenizer_unless_trusted(hf_home, tmp_path):
    entry = model_weights("sat-nano").file_for("tokenizer")
    bert = write_tokenizer(tmp_path / "bert", mpnet_vocabulary(30522))  # BERT's size: not BioLORD's
    with pytest.raises(WeightsMismatch, match="30522 tokens, not 30527.*trust_tokenizer=true"):
        check_tokenizer(bert, entry)
    assert check_tokenizer(bert, entry, trust=True)["verified"].startswith("trusted despite")
    first = check_tokenizer(write_tokenizer(tmp_path / "biolord", mpnet_vocabulary()), entry)  # pins its hash
    assert first["verified"] == "vocabulary size and the hash pinned at first use"
    with pytest.raises(WeightsMismatch, match="differs from the one pinned at first use"):
        check_tokenizer(write_tokenizer(tmp_path / "other", mpnet_vocabulary(swap=True)), entry)
    assert check_tokenizer(tmp_path / "biolord", entry) == first


def test_segvols_clip_tokenizer_is_checked_against_the_published_files(hf_home, tmp_path):
    from tiny_clip import write_tiny_clip_tokenizer

    entry = model_weights("segvol").file_for("clip")
    with pytest.raises(WeightsMismatch, match="not segvol's tokenizer.*SHA-256.*not the published"):
        check_tokenizer(write_tiny_clip_tokenizer(tmp_path / "clip"), entry)


def test_segvol_without_its_clip_tokenizer_fails_before_the_model_is_built(hf_home):
    from bench.engine import runner
    from bench.engine.presets import load_protocol

    runner.PROCESS_MODELS.clear()
    with pytest.raises(MissingWeights, match="segvol: tokenizer .*needed for text prompts.*bench models fetch segvol"):
        runner.model_spec(run="r", model="segvol", protocol=load_protocol("segvol"), model_args=None,
                          checkpoint=None, trust_checkpoint=False, device="cpu", only=None, replay=None)
    assert not runner.PROCESS_MODELS.models()


def test_registry_defaults_and_hf_references_resolve_from_the_hub_cache_offline(hf_home, tmp_path):
    cache = hub_cache_dir()
    nano = put_hub_file(cache, "zzh99/SAT", "Nano/nano.pth", b"nano")
    text = put_hub_file(cache, "zzh99/SAT", "Nano/nano_text_encoder.pth", b"text")
    for name in ("vocab.txt", "tokenizer_config.json"):
        source = write_tokenizer(tmp_path / "tok", mpnet_vocabulary()) / name
        put_hub_file(cache, "FremyCompany/BioLORD-2023-C", name, source.read_bytes())
    checkpoint, options, records = resolve_run_files("sat-nano", None, {"window": "64,64,32"}, {"text"})
    assert checkpoint == str(nano) and options["text_encoder"] == str(text)
    assert Path(options["tokenizer"]) == cache / "models--FremyCompany--BioLORD-2023-C" / "snapshots" / COMMIT
    assert [r["role"] for r in records] == ["checkpoint", "text_encoder", "tokenizer"]
    assert records[0]["sha256"] == hashlib.sha256(b"nano").hexdigest()
    by_reference = resolve_run_files("sat-nano", "hf://zzh99/SAT/Nano/nano.pth",
                                     {"tokenizer": "hf://FremyCompany/BioLORD-2023-C"}, {"text"})
    assert by_reference[0] == str(nano) and by_reference[1]["tokenizer"] == options["tokenizer"]
    assert by_reference[1]["text_encoder"] == str(text)  # not given: the registry default, from the cache
    with pytest.raises(MissingWeights, match=r"hf://zzh99/SAT/Nano/other.pth\) is not in the Hugging Face cache"):
        resolve_run_files("sat-nano", "hf://zzh99/SAT/Nano/other.pth", {}, {"text"})


@pytest.mark.slow
def test_a_run_loads_official_layout_parity_weights_from_the_cache_and_records_them(hf_home, tmp_path):
    torch = pytest.importorskip("torch")
    from bench.engine import runner
    from bench.engine.presets import load_protocol
    from models.parity import parity_state_dict
    from models.sat.network import NANO, SATNetwork
    from models.sat.text import SATTextEncoder

    with torch.device("meta"):
        training, text = SATNetwork(NANO, deep_supervision=True), SATTextEncoder()
    files = {}
    for name, module, extra in (("nano.pth", training, {}), ("nano_text_encoder.pth", text,
                                {"module.text_tower.biolord.embeddings.position_ids": torch.arange(514)[None]})):
        state = {f"module.{k}": v for k, v in parity_state_dict(module).items()} | extra
        torch.save({"step": 1, "model_state_dict": state}, tmp_path / name)
        files[name] = put_hub_file(hub_cache_dir(), "zzh99/SAT", f"Nano/{name}", (tmp_path / name).read_bytes())
        (tmp_path / name).unlink()
    tokenizer = write_tokenizer(tmp_path / "tok", mpnet_vocabulary())
    for name in ("vocab.txt", "tokenizer_config.json"):
        put_hub_file(hub_cache_dir(), "FremyCompany/BioLORD-2023-C", name, (tokenizer / name).read_bytes())
    runner.PROCESS_MODELS.clear()
    try:
        spec = runner.model_spec(run="r", model="sat-nano", protocol=load_protocol("sat"),
                                 model_args=["window=64,64,32"], checkpoint=None, trust_checkpoint=False,
                                 device="cpu", only=None, replay=None)
        model = runner.model_for(spec)
        config = json.loads(json.dumps(runner.run_config(spec, model, "test")))
    finally:
        runner.PROCESS_MODELS.clear()
    assert not runner.untrained(spec)
    digest = hashlib.sha256(files["nano.pth"].read_bytes()).hexdigest()
    assert model.checkpoint_sha256 == digest and config["model_provenance"]["sha256"] == digest
    recorded = {r["role"]: r for r in config["weights"]}
    assert recorded["checkpoint"]["sha256"] == digest and recorded["checkpoint"]["source"] == "hf://zzh99/SAT/Nano/nano.pth"
    assert recorded["text_encoder"]["sha256"] == model.text_encoder_sha256
    assert recorded["tokenizer"]["vocabulary_sha256"] == weights.vocabulary_sha256(
        {t: i for i, t in enumerate(mpnet_vocabulary())})


def test_sat_pros_files_are_picked_from_its_hub_folder_by_name(hf_home):
    checkpoint = put_hub_file(hub_cache_dir(), "zzh99/SAT", "Pro/SAT_Pro.pth", b"pro")
    encoder = put_hub_file(hub_cache_dir(), "zzh99/SAT", "Pro/text_encoder.pth", b"text")
    found = {entry.option: bench_cached(entry) for entry in model_weights("sat-pro").files[:2]}
    assert found == {"checkpoint": checkpoint, "text_encoder": encoder}
    put_hub_file(hub_cache_dir(), "zzh99/SAT", "Pro/SAT_Pro_v2.pth", b"pro 2")  # two candidates: say so
    with pytest.raises(WeightsMismatch, match=r"expected one file matching '\*.pth'.*SAT_Pro.pth', 'SAT_Pro_v2.pth"):
        bench_cached(model_weights("sat-pro").files[0])
