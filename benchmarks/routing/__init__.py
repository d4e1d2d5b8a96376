"""The routing suite: every routing policy on a simulated vLLM fleet, workload by workload (shared
prefixes, conversations, mixed lengths, long outputs, a burst of new prefixes; one gateway or several
replicas), against the step model's ceiling (`python -m benchmarks.routing`; the method: README.md)."""

from benchmarks.routing.cli import main, parse_args

__all__ = ["main", "parse_args"]
