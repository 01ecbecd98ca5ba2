"""SegVol (BAAI-DCAI/SegVol): text, point and box prompts with zoom-out-zoom-in inference, natively.

`network` (the network, key for key), `checkpoint` (official state-dict layout and strict loading), `text` (CLIP
tokenisation with SegVol's template), `preprocess` (the demo's preprocessing and its inverse), `inference`
(zoom-out-zoom-in), `model` (the model, `SegVol(clip=DIR, zoom_in=True, prompts="text+box", seed=0)`, weights
random until `load_checkpoint`). Official: BAAI-DCAI/SegVol@5768c97 network/model.py, inference_demo.py.
"""
