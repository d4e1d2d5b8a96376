"""Reproducible load runs of the gateway against a fixed upstream (see benchmarks/RESULTS.md)."""
