"""SAT-Nano and SAT-Pro (zhaoziheng/SAT), text-prompted universal segmentation, rebuilt natively.

`model` (the v2 model: `sat_nano`, `sat_pro`), `network` (segmentation network, official state-dict keys),
`text` (BioLORD-2023-C text tower and SAT's tokenisation), `weights` (official checkpoint layout, loaded
strictly), `inference` (SAT's windows, Gaussian blending and `predict_volume`). Proof of fidelity:
tests/test_sat_network.py, tests/test_sat_inference.py, tests/test_sat_model.py.
"""

from models.sat.model import SAT, sat_nano, sat_pro

__all__ = ["SAT", "sat_nano", "sat_pro"]
