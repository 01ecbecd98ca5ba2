"""Weightless reference models, so the interactive loop is meaningful on a machine without checkpoints."""
