"""Benchmarks (scripts, not tests): `python -m bench.<name>` from the repository root; each prints JSON lines."""
