"""The streaming suite: time to first token and chunk pacing directly, through this gateway and through
the peers, from a simulator that paces its chunks (`python -m benchmarks.streaming`; the method: README.md)."""

from benchmarks.streaming.cli import main, parse_args

__all__ = ["main", "parse_args"]
