"""Helpers the tests and the benchmarks share: loopback ports, a real Redis, and the reliability figures'
records. Kept apart from both so that neither imports the other for them."""
