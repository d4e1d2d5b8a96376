"""The plots of the latest results (`python -m benchmarks.plots`): the PNGs in this folder, linked from
README.md and RESULTS.md, and the code that draws them."""

from benchmarks.plots.section import main

__all__ = ["main"]
