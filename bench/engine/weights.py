"""Getting a model's official files: the Hugging Face cache first, then `huggingface_hub` or a plain HTTPS download.

Hub sources go through `hf_hub_download` / `snapshot_download` into the hub cache (or `--to DIR`); URL sources go
into this project's folder of the hub's assets cache (`huggingface_hub.cached_assets_path`), downloaded to
`NAME.incomplete` with progress, resumed with an HTTP Range request after a cut connection, checked against the
published size and SHA-256 and only then renamed: the cache never holds a half-written or unverified file.

`resolve_run_files` turns what a run was given (`--checkpoint`, tokenizer options: a local path, `hf://owner/
repo/path`, or nothing = the registry's default, from the cache only) into local paths, checks them against the
registry, and returns what run.json records. It imports no torch, so a missing file is reported, in one line
naming the model, the source and the fetch command, before any network or weights are built.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from models.weights import (
    WeightFile,
    WeightsMismatch,
    assets_dir,
    check_file,
    check_tokenizer,
    hub_cache_dir,
    model_weights,
    offline,
    select,
)
from protocols.errors import BenchError

CHUNK = 1 << 20


class MissingWeights(BenchError):
    """A file a model needs is neither given nor cached, and cannot be downloaded now (offline, manual source)."""

    kind = "checkpoint"


def fetch_command(entry: WeightFile) -> str:
    return f"bench models fetch {entry.model}"


def _option(entry: WeightFile) -> str:
    return "--checkpoint PATH" if entry.option == "checkpoint" else f"--model-args {entry.option}=PATH"


def _missing(entry: WeightFile, why: str) -> MissingWeights:
    how = (f"save it and pass {_option(entry)} (`bench models verify {entry.model} --checkpoint PATH` checks it)"
           if entry.manual else f"fetch it with `{fetch_command(entry)}` when online, or pass {_option(entry)}")
    return MissingWeights(f"{entry.model}: {entry.role} ({entry.source()}) {why}; {how}")


def _url_target(entry: WeightFile, name: str, *, create: bool = False) -> Path:
    folder = assets_dir(entry.model, create=create)
    return folder / entry.option / name if entry.urls else folder / name


def _hub_folder(entry: WeightFile, to: Path | None, *, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    hub = entry.hub
    patterns = hub.get("patterns") or [f"{hub['folder']}/*"]
    kwargs = {"local_dir": str(to)} if to else {"cache_dir": str(hub_cache_dir())}
    root = Path(snapshot_download(hub["repo"], allow_patterns=patterns, local_files_only=local_only, **kwargs))
    folder = root / hub["folder"] if hub.get("folder") else root
    if not folder.is_dir() or not any(folder.iterdir()):
        raise FileNotFoundError(f"{folder}: empty")
    return folder


def _pick(folder: Path, entry: WeightFile) -> Path:
    """The one file of a hub folder that `entry` selects."""
    found = select(sorted(p.name for p in folder.iterdir() if p.is_file()), entry)
    if len(found) != 1:
        raise WeightsMismatch(f"{folder}: expected one file matching {entry.hub.get('select')!r} for "
                              f"{entry.model}'s {entry.role}, found {found or 'none'}")
    return folder / found[0]


def cached(entry: WeightFile) -> Path | None:
    """Where the entry's file (or folder) already is in the cache; None when it is not there (never downloads)."""
    if entry.hub is not None:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.errors import LocalEntryNotFoundError

        if "file" in entry.hub:
            found = try_to_load_from_cache(entry.hub["repo"], entry.hub["file"], cache_dir=str(hub_cache_dir()))
            return Path(found) if isinstance(found, str) else None
        try:
            folder = _hub_folder(entry, None, local_only=True)
        except (LocalEntryNotFoundError, FileNotFoundError):
            return None
        return _pick(folder, entry) if "select" in entry.hub else folder
    if entry.url:
        path = _url_target(entry, entry.url.rsplit("/", 1)[-1])
        return path if path.is_file() else None
    if entry.urls:
        folder = _url_target(entry, "x").parent
        return folder if all((folder / name).is_file() for name in entry.urls) else None
    return None


def download_url(url: str, target: Path, *, size: int | None = None, sha256: str | None = None,
                 progress: bool = True) -> Path:
    """`url` into `target` through `target.incomplete`: resumed (HTTP Range) when a previous try left part of it,
    checked against `size` and `sha256` (a full hash or a published prefix), renamed only when right. A wrong
    file is deleted and refused (WeightsMismatch); a cut connection leaves the partial file to resume from."""
    from tqdm import tqdm

    from models.checkpoints import sha256_of

    target.parent.mkdir(parents=True, exist_ok=True)  # under the assets cache: `assets_dir(..., create=True)`
    partial = target.with_name(target.name + ".incomplete")
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as error:
        if error.code != 416:  # 416: the partial file is already complete
            raise
        response = None
    if response is not None:
        with response:
            if have and response.status != 206:  # the server ignored the Range: start again
                have = 0
            total = response.headers.get("Content-Length")
            total = int(total) + have if total is not None else size
            with open(partial, "ab" if have else "wb") as out, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=target.name,
                    disable=not progress) as bar:
                try:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
                except http.client.IncompleteRead as error:  # what was read is kept: the next try resumes
                    out.write(error.partial)
            if total is not None and partial.stat().st_size < total:
                raise ConnectionError(f"{url}: connection closed after {partial.stat().st_size} of {total} bytes "
                                      "(run the same command again to resume)")
    got = partial.stat().st_size
    digest = sha256_of(partial)
    if (size is not None and got != size) or (sha256 and not digest.startswith(sha256)):
        partial.unlink()
        raise WeightsMismatch(f"{url}: the downloaded file ({got} bytes, SHA-256 {digest}) is not the published one "
                              f"({size if size is not None else '?'} bytes, SHA-256 {sha256 or '?'}); deleted")
    os.replace(partial, target)
    return target


def _check(path: Path, entry: WeightFile) -> Path:
    if entry.role == "tokenizer":
        check_tokenizer(path, entry)
    elif path.is_file():
        check_file(path, entry)
    return path


def _reachable(url: str) -> bool:
    """Whether the host of `url` answers a TCP connection within a few seconds (no network: say so at once,
    instead of the hub client's five retries)."""
    import socket

    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                 timeout=5).close()
    except OSError:
        return False
    return True


def _endpoint(entry: WeightFile) -> str:
    if entry.hub is None:
        return entry.url or next(iter(entry.urls.values()))["url"]
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def fetch(entry: WeightFile, to: Path | None = None, *, progress: bool = True) -> Path:
    """The entry's file or folder, from the cache when there (and `to` is not given), else downloaded;
    checked against the registry either way. MissingWeights when it cannot be got now."""
    if to is None and (found := cached(entry)) is not None:
        return _check(found, entry)
    if entry.manual:
        raise _missing(entry, "has no direct download")
    if offline():
        raise _missing(entry, "is not in the Hugging Face cache and HF_HUB_OFFLINE=1")
    if not _reachable(_endpoint(entry)):
        host = urlsplit(_endpoint(entry)).hostname
        raise _missing(entry, f"is not in the Hugging Face cache and {host} cannot be reached (no network?)")
    try:
        if entry.hub is not None and "file" in entry.hub:
            from huggingface_hub import hf_hub_download

            kwargs = {"local_dir": str(to)} if to else {"cache_dir": str(hub_cache_dir())}
            path = Path(hf_hub_download(entry.hub["repo"], entry.hub["file"], **kwargs))
        elif entry.hub is not None:
            folder = _hub_folder(entry, to, local_only=False)
            path = _pick(folder, entry) if "select" in entry.hub else folder
        elif entry.url:
            name = entry.url.rsplit("/", 1)[-1]
            path = download_url(entry.url, (to / name) if to else _url_target(entry, name, create=True), size=entry.size,
                                sha256=entry.sha256 or entry.sha256_prefix, progress=progress)
        else:
            for name, spec in entry.urls.items():
                target = (to / name) if to else _url_target(entry, name, create=True)
                if not target.is_file():
                    download_url(spec["url"], target, size=spec.get("size"), sha256=spec.get("sha256"),
                                 progress=progress)
            path = to if to else _url_target(entry, "x").parent
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        raise _missing(entry, f"could not be downloaded ({error})") from None
    except OSError as error:  # huggingface_hub's offline / connection errors
        if type(error).__module__.startswith("huggingface_hub") or "connect" in str(error).lower():
            raise _missing(entry, f"could not be downloaded ({str(error).splitlines()[0]})") from None
        raise
    return _check(path, entry)


def parse_hub_reference(reference: str) -> tuple[str, str]:
    """`hf://owner/repo/path/in/repo` -> ("owner/repo", "path/in/repo") (the path may be empty: the whole repo)."""
    parts = reference.removeprefix("hf://").strip("/").split("/", 2)
    if len(parts) < 2 or not all(parts[:2]):
        raise BenchError(f"{reference}: a hub reference is hf://owner/repo/path")
    return "/".join(parts[:2]), parts[2] if len(parts) == 3 else ""


def resolve(reference: str, entry: WeightFile) -> Path:
    """A local path as given (it must exist), or an `hf://` reference from the cache (downloaded when online)."""
    if not str(reference).startswith("hf://"):
        path = Path(reference)
        if not path.exists():
            raise MissingWeights(f"{entry.model}: {reference}: no such file or folder (its {entry.role})")
        return path
    repo, path = parse_hub_reference(reference)
    as_entry = WeightFile(model=entry.model, role=entry.role, option=entry.option, vocabulary=entry.vocabulary,
                          hub={"repo": repo, "folder": path} if entry.is_folder else {"repo": repo, "file": path})
    return fetch(as_entry, progress=False)


def resolve_run_files(model: str, checkpoint: str | None, options: dict, prompt_kinds: set[str]
                      ) -> tuple[str | None, dict, list[dict]]:
    """The run's checkpoint and model options with every registry file resolved to a local path, and the
    records run.json keeps ({role, option, source, path, sha256 | tokenizer check}). A file given is resolved
    (local path or hf://), one not given comes from the cache when there; a tokenizer the protocol's text
    prompts need, or weights a model cannot run without, missing -> MissingWeights, before any model is built.
    `trust_tokenizer=true` (popped from the options) uses a tokenizer that fails its check, recorded as such."""
    options = dict(options)
    trust_tokenizer = bool(options.pop("trust_tokenizer", False))
    weights = model_weights(model)
    if weights is None:
        return checkpoint, options, []
    records = []
    for entry in weights.files:
        given = checkpoint if entry.option == "checkpoint" else options.get(entry.option)
        path = resolve(str(given), entry) if given else cached(entry)
        if path is None:
            needed = weights.requires_weights or (entry.needed_for and entry.needed_for in prompt_kinds)
            if needed:
                raise _missing(entry, "is needed" + (f" for {entry.needed_for} prompts" if entry.needed_for
                                                     else "") + " and is not in the Hugging Face cache")
            continue
        record = {"role": entry.role, "option": entry.option, "source": entry.source(), "path": str(path)}
        if entry.role == "tokenizer":
            record.update(check_tokenizer(path, entry, trust=trust_tokenizer))
        elif path.is_file():
            try:
                record["sha256"] = check_file(path, entry)
                record["verified"] = entry.published() if (entry.sha256 or entry.sha256_prefix) else "no published checksum"
            except WeightsMismatch as error:  # a fine-tuned file is legitimate: strict loading still applies
                from models.checkpoints import sha256_of

                record.update(sha256=sha256_of(path), verified=f"differs from the published checksum: {error}")
        if entry.option == "checkpoint":
            checkpoint = str(path)
        else:
            options[entry.option] = str(path)
        records.append(record)
    return checkpoint, options, records
