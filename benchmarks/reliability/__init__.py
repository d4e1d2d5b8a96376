"""The reliability report: the table of docs/reliability.md rendered from the figures' records
(`python -m benchmarks.reliability`, run by `make reliability`)."""

from benchmarks.reliability.figures import FIGURES, Figure
from benchmarks.reliability.report import END, START, Measure, main, measures_by_figure, render_table

__all__ = ["END", "FIGURES", "START", "Figure", "Measure", "main", "measures_by_figure", "render_table"]
