"""SAT-Nano and SAT-Pro (zhaoziheng/SAT), text-prompted universal segmentation, rebuilt natively.

`network` (segmentation network, official state-dict keys), `text` (BioLORD-2023-C text tower and SAT's
tokenisation), `weights` (official checkpoint layout, loaded strictly), `inference` (SAT's windows, Gaussian
blending and `predict_volume`). Proof of fidelity: tests/test_sat_network.py, tests/test_sat_inference.py.
"""
