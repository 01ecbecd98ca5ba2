"""SAT-Nano and SAT-Pro behind the model interface: text prompts, all requested classes of a scan in one call.

The runner hands the scan already in SAT space (`input_grid="satds"`: RAS, 1 x 1 x 3 mm, foreground crop,
normalised; `bench.engine.spaces`) and maps the masks back to the native grid. Each class name becomes SAT's prompt (the
bare lower-case name with the scan's modality, `encode_prompts`); the embeddings are kept per (modality, name) for
the life of the loaded weights, so a run encodes every class once. `predict_volume` then runs the backbone once
per window for all classes, blends and thresholds as SAT does (fp16 autocast on CUDA only). Phases
(`models.base.phase`): preprocess = the text prompts encoded (new names only), model = the windows, blended,
postprocess = the threshold.

Weights come in two official files, loaded strictly through the restricted reader (`models.checkpoints`) in
their layouts (`models.sat.weights`): the segmentation network (`--checkpoint nano.pth`: `{'model_state_dict':
DDP state dict, 'optimizer_state_dict'}`, `module.` keys, deep-supervision heads skipped as SAT's inference
does) and the text tower (`text_encoder=PATH`, its own checkpoint, `text_network` here); the BioLORD-2023-C
tokenizer is a local folder (`tokenizer=DIR`). Both networks are in eval mode from construction on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base import Capabilities, CheckpointInfo, Image, Model, ModelOptionError, Target, phase
from models.checkpoints import CheckpointError, load_checkpoint
from models.sat.inference import THRESHOLD, encode_prompts, predict_volume
from models.sat.network import NANO, PRO, WINDOW, SATConfig, SATNetwork
from models.sat.text import SATTextEncoder, SATTokenizer, modality_code
from models.sat.weights import NETWORK_LAYOUT, TEXT_LAYOUT

DOWNLOAD = "https://huggingface.co/zzh99/SAT (Nano/ or Pro/: model and text-encoder checkpoints); tokenizer: " \
           "https://huggingface.co/FremyCompany/BioLORD-2023-C"


def _rebuild_position_ids(text_network: SATTextEncoder) -> None:
    """MPNet's `position_ids` (0, 1, ..., 513) is a non-persistent buffer: not in any checkpoint, so a tower
    built on the meta device gets it back here."""
    embeddings = text_network.text_tower.biolord.embeddings
    if embeddings.position_ids.is_meta:
        embeddings.position_ids = torch.arange(embeddings.position_ids.shape[-1]).expand((1, -1))


def parse_window(window: str | Sequence[int] | None) -> tuple[int, int, int]:
    """`window` model-arg ("96,64,64" or a list) as a tuple; None gives SAT's 288 x 288 x 96."""
    if window is None:
        return WINDOW
    values = window.replace("x", ",").split(",") if isinstance(window, str) else window
    try:
        parsed = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        parsed = ()
    if len(parsed) != 3 or min(parsed) <= 0:
        raise ModelOptionError(f"window {window!r}: expected three positive sizes, e.g. 96,64,64")
    return parsed


def load_tokenizer(folder: str | Path) -> SATTokenizer:
    """BioLORD-2023-C's tokenizer from a local folder; a ValueError names the folder when it cannot be read."""
    try:
        return SATTokenizer.from_folder(folder)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"tokenizer={folder}: {str(error).splitlines()[0]}") from None


class SAT(Model):
    """SAT (`config` NANO or PRO). `window` is a TEST KNOB only: the official window is 288 x 288 x 96 and
    published numbers need it; a smaller one (multiples of 32, e.g. 96,64,64) lets tests run on a CPU.
    `batch_size`: windows per backbone pass (SAT: 2)."""

    version = "1"
    capabilities = Capabilities(ndims=frozenset({3}), prompts=frozenset({"text"}), accumulates_clicks=False,
                                input_grid="satds", devices=frozenset({"cpu", "cuda"}), reports_phases=True)
    checkpoint_layout = NETWORK_LAYOUT
    checkpoint_info = CheckpointInfo(files=("SAT model checkpoint (--checkpoint)",
                                            "SAT text-encoder checkpoint (--model-args text_encoder=PATH)",
                                            "BioLORD-2023-C tokenizer folder (--model-args tokenizer=DIR)"),
                                     download=DOWNLOAD)

    def __init__(self, *, config: SATConfig, name: str, text_encoder: str | None = None,
                 tokenizer: str | None = None, window: str | Sequence[int] | None = None, batch_size: int = 2):
        if int(batch_size) < 1:
            raise ModelOptionError(f"batch_size={batch_size}: at least 1 window per pass")
        self.name = name
        with torch.device("meta"):  # no random initialisation: SAT runs only with its official weights, assigned
            self.network = SATNetwork(config, image_size=parse_window(window)).eval()  # by `load_checkpoint`
            self.text_network = SATTextEncoder().eval()
        self.text_encoder = str(text_encoder) if text_encoder else None
        self.text_encoder_sha256: str | None = None
        self.tokenizer = load_tokenizer(tokenizer) if tokenizer else None
        self.batch_size = int(batch_size)
        self._embeddings: dict[tuple[int, str], torch.Tensor] = {}

    def load_checkpoint(self, path: str, *, trust: bool = False) -> SAT:
        """The model checkpoint at `path` into `network`, and the `text_encoder` file (when given) into
        `text_network`, both strictly."""
        super().load_checkpoint(path, trust=trust)
        if self.text_encoder is not None:
            self.text_encoder_sha256 = load_checkpoint(self.text_network, self.text_encoder, TEXT_LAYOUT,
                                                       trust=trust)
            _rebuild_position_ids(self.text_network)
        self._embeddings.clear()
        return self

    def missing(self) -> list[str]:
        """What this model still needs before it can segment (random SAT weights give meaningless masks)."""
        needs = [("--checkpoint MODEL.pth", self.checkpoint_sha256),
                 ("--model-args text_encoder=TEXT_ENCODER.pth", self.text_encoder_sha256),
                 ("--model-args tokenizer=DIR", self.tokenizer)]
        return [what for what, have in needs if have is None]

    def to(self, device: str) -> SAT:
        """Both networks on `device`; refuses (ValueError) a model without its weights or tokenizer, so a run
        fails before its first case."""
        missing = self.missing()
        if missing:
            raise CheckpointError(f"model {self.name!r} needs its official weights and tokenizer; missing: "
                             f"{', '.join(missing)}")
        super().to(device)
        self.text_network.to(device)
        self._embeddings.clear()
        return self

    def batch_settings(self) -> dict[str, Any]:
        return {"windows_per_pass": self.batch_size, "window": list(self.network.image_size)}

    def text_embeddings(self, names: Sequence[str], modality: str) -> torch.Tensor:
        """Text queries [N, 768] of class names for a scan of `modality`, each encoded once per loaded weights."""
        code = modality_code(modality)
        new = list(dict.fromkeys(n.lower() for n in names if (code, n.lower()) not in self._embeddings))
        if new:
            encoded = encode_prompts(self.text_network, self.tokenizer, new, modality)
            self._embeddings.update({(code, n): e for n, e in zip(new, encoded)})
        return torch.stack([self._embeddings[code, n.lower()] for n in names])

    def _segment(self, image: Image, targets: Sequence[Target], state: dict[str, Any]) -> dict[str, np.ndarray]:
        missing = self.missing()
        if missing:
            raise ModelOptionError(f"model {self.name!r} cannot segment without {', '.join(missing)}")
        names = [target.prompt.text or target.name for target in targets]
        with phase("preprocess"):
            queries = self.text_embeddings(names, image.modality)
        with phase("model"):
            probabilities = predict_volume(self.network, queries, image.array, batch_size=self.batch_size)
        with phase("postprocess"):
            return {target.name: probability > THRESHOLD for target, probability in zip(targets, probabilities)}


def sat_nano(*, text_encoder: str | None = None, tokenizer: str | None = None, window=None,
             batch_size: int = 2) -> SAT:
    """SAT-Nano (U-Net 64..768, 2 convs per stage); weights by `load_checkpoint`."""
    return SAT(config=NANO, name="sat-nano", text_encoder=text_encoder, tokenizer=tokenizer, window=window,
               batch_size=batch_size)


def sat_pro(*, text_encoder: str | None = None, tokenizer: str | None = None, window=None,
            batch_size: int = 2) -> SAT:
    """SAT-Pro (U-Net 128..1536, 3 convs per stage); weights by `load_checkpoint`."""
    return SAT(config=PRO, name="sat-pro", text_encoder=text_encoder, tokenizer=tokenizer, window=window,
               batch_size=batch_size)
