"""The overhead suite: the gateway's cost over a direct call to a fixed nginx upstream, per configuration,
ASGI server and number of processes, closed and open loop (`python -m benchmarks.overhead`; the method:
README.md)."""

from benchmarks.overhead.cli import parse_args
from benchmarks.overhead.main import main
from benchmarks.overhead.phase_tables import open_loop_table, scaling_table, scaling_verdicts
from benchmarks.overhead.results import GatewaySummary, TargetResult, summarize
from benchmarks.overhead.run import Options
from benchmarks.overhead.tables import failures, headline

__all__ = [
    "GatewaySummary",
    "Options",
    "TargetResult",
    "failures",
    "headline",
    "main",
    "open_loop_table",
    "parse_args",
    "scaling_table",
    "scaling_verdicts",
    "summarize",
]
