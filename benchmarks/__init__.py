"""Reproducible load runs of the gateway (benchmarks/README.md); the latest figures in RESULTS.md."""
