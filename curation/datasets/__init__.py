"""Datasets: file formats, import and export, the train/eval split, validation and snapshots."""
