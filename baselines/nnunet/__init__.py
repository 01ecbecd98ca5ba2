"""SAT's 72 per-dataset nnU-Net specialists, built and run with the real nnU-Net v2 library (nnunetv2).

Pipeline, one module per stage: `convert` (SAT-DS dataset -> nnU-Net raw), `plans` (SAT-DS's shipped plans under
their own identifier), `stages` (plan/preprocess, train, predict, each in a child process running `worker` with the
environment of `workspace`), `ingest` (label values -> unified classes, derived classes, scoring), `table11`
(SAT Table 11 recomputed). The CLI is `bench baselines nnunet ...`. `model` is a trained model folder as the
benchmark model `nnunet` (`bench run --model nnunet --checkpoint FOLDER`), in this process; `REGISTRY_ENTRY`
adds it to the model registry through pyproject.toml's `medseg_bench.models` entry point.
"""

from models.registry import Entry

REGISTRY_ENTRY = Entry("baselines.nnunet:nnunet", checkpoint_argument=True)


def __getattr__(name: str):
    """`nnunet` (the model registry's factory) and `NnUNet`, imported only when asked for."""
    if name in ("nnunet", "NnUNet"):
        from baselines.nnunet import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
