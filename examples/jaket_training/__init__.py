"""The training library the example scripts are written with: data preparation, pre-training (flags, inputs,
optimization, checkpoints, the sharded refresh), fine-tuning (`finetuning/`), evaluation, metrics and model cards.
Installed with the package; a saved model never imports it."""
