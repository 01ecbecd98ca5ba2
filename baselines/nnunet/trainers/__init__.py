"""Trainers nnU-Net finds by name through `nnUNet_extTrainer` (set to this folder by the project for every stage)."""
