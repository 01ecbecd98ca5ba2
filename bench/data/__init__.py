"""Data in: reading images and masks, matching files into cases, class maps, the SAT-DS catalog."""
