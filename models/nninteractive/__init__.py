"""nnInteractive through its PyPI package's inference session."""
