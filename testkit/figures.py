"""Reliability figures (../shared/design/reliability.md): a scenario test, or the soak, records what it
measured and whether the figure's threshold held; `make reliability` collects the records into
docs/reliability.md (`python -m benchmarks.reliability`).

Tests assert outcomes (statuses, error events, counts); timing thresholds are recorded here, not
asserted, so a busy machine never fails the suite but the report shows the figure honestly."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

FIGURES_ENV = "RELIABILITY_FIGURES"


def record_figure(figure: int, measure: str, value: float | int | str, *, threshold: str, met: bool,
                  unit: str = "", to: Path | None = None) -> None:
    """Append one measurement of `figure` to `to`, else to the file named by $RELIABILITY_FIGURES (no-op
    when unset)."""
    path = to or os.environ.get(FIGURES_ENV)
    if not path:
        return
    record = {"figure": figure, "measure": measure, "value": value, "unit": unit, "threshold": threshold,
              "met": met, "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
