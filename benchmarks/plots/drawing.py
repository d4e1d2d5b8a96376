"""What every chart shares: matplotlib without a display, where the PNGs go, and grouped bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PLOTS_DIR = Path(__file__).resolve().parent
"""The PNGs sit beside the code that draws them (README.md and RESULTS.md link them)."""

Data = dict[str, Any]
__all__ = ["PLOTS_DIR", "Data", "bars", "plt", "save"]
"""`plt` too: the charts use pyplot only after this module chose the Agg backend."""


def save(fig: Any, name: str) -> Path:
    PLOTS_DIR.mkdir(exist_ok=True)
    path = PLOTS_DIR / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bars(ax: Any, labels: Sequence[str], series: dict[str, list[float]], *, log: bool = False) -> None:
    """Grouped bars: one group per label, one bar per series."""
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, values, width, label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    else:
        ax.margins(y=0.25)  # room for the legend above the bars
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.9)


