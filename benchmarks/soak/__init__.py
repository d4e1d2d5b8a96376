"""The soak suite: reliability figure 15 (an hour at half capacity with 1 % faults) and issue 11's leak run
(`python -m benchmarks.soak`; the method: README.md)."""

from benchmarks.soak.cli import main, parse_args

__all__ = ["main", "parse_args"]
