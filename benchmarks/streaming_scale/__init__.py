"""The streaming-at-scale suite: hundreds to a thousand concurrent streams at a 20 ms pace, directly,
through this gateway (one process and two; chat and a translated surface) and through the peers, from
a pacing upstream far cheaper per chunk than the simulator (`python -m benchmarks.streaming_scale`; the
method: README.md)."""

from benchmarks.streaming_scale.cli import main, parse_args

__all__ = ["main", "parse_args"]
