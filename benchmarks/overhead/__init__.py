"""The overhead suite: the gateway's cost over a direct call to a fixed nginx upstream, per configuration,
ASGI server and number of processes, closed and open loop, and side by side with an older commit
(`python -m benchmarks.overhead`; the method: README.md)."""

from benchmarks.overhead.cli import PublishComparison, parse_args
from benchmarks.overhead.compare import CompareOptions
from benchmarks.overhead.compare_report import ConfigComparison, Side
from benchmarks.overhead.compare_report import render as render_comparison
from benchmarks.overhead.compare_report import summarize as summarize_comparison
from benchmarks.overhead.compare_report import table as comparison_table
from benchmarks.overhead.main import main
from benchmarks.overhead.phase_tables import open_loop_table, scaling_table, scaling_verdicts
from benchmarks.overhead.results import GatewaySummary, TargetResult, summarize
from benchmarks.overhead.run import Options
from benchmarks.overhead.tables import failures, headline

__all__ = [
    "CompareOptions",
    "ConfigComparison",
    "GatewaySummary",
    "Options",
    "PublishComparison",
    "Side",
    "TargetResult",
    "comparison_table",
    "failures",
    "headline",
    "main",
    "open_loop_table",
    "parse_args",
    "render_comparison",
    "scaling_table",
    "scaling_verdicts",
    "summarize",
    "summarize_comparison",
]
