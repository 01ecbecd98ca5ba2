"""SAM-Med2D (OpenGVLab): SAM ViT-B at 256 x 256 with an adapter in every encoder block."""
