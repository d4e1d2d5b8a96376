"""The routing suite: prefix-affinity routing against round robin and least outstanding on a simulated
vLLM fleet (`python -m benchmarks.routing`; the method: README.md)."""

from benchmarks.routing.cli import main, parse_args

__all__ = ["main", "parse_args"]
