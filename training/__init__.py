"""LoRA training and evaluation on approved snapshots (see the training issue)."""
