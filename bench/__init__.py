"""Benchmarks (scripts, not tests): `python -m bench.<name>` from the repository root; each prints JSON lines."""

import os
import sys

# The benchmarks reuse the example scripts' helpers (jaket_examples), which live beside the scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
