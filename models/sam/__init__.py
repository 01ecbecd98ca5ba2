"""SAM ViT-B/L/H from the official `segment-anything` package, applied slice by slice."""
