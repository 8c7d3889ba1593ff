"""Labbook's benchmarks: ``python benchmarks/run_all.py`` (see docs/benchmarks.md). Not part of the app."""
