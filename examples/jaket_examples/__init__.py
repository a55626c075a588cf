"""Helpers shared by the example scripts: data preparation, pre-training inputs, fine-tuning collators."""
