"""SAT's 72 per-dataset nnU-Net specialists, built and run with the real nnU-Net v2 library (nnunetv2).

Pipeline, one module per stage: `convert` (SAT-DS dataset -> nnU-Net raw), `plans` (SAT-DS's shipped plans under
their own identifier), `stages` (plan/preprocess, train, predict, each in a child process running `worker` with the
environment of `workspace`), `ingest` (label values -> unified classes, derived classes, scoring), `table11`
(SAT Table 11 recomputed). The CLI is `bench baselines nnunet ...`.
"""
