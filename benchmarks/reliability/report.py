"""The reliability table in docs/reliability.md: each of the eighteen figures, the command that reproduces
it and the last values measured, from every `benchmarks/results/reliability-*.jsonl` (records written by
`testkit/figures.py::record_figure`: the `make reliability` test run, the soak).

Run as `python -m benchmarks.reliability`; the table replaces the text between the markers."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness.files import REPO, RESULTS_DIR
from benchmarks.reliability.figures import FIGURES, Figure

DOC = REPO / "docs" / "reliability.md"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


@dataclass(frozen=True, slots=True)
class Measure:
    """One measure of a figure, over the records of its last run (several for parametrized tests)."""

    name: str
    values: tuple[Any, ...]
    unit: str
    threshold: str
    met: bool
    tests: tuple[str, ...]
    at: str

    def shown(self) -> str:
        numbers = [v for v in self.values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(self.values) and len({v for v in numbers if not math.isnan(v)}) > 1:
            finite = [v for v in numbers if not math.isnan(v)]
            text = f"{_number(min(finite))} to {_number(max(finite))}"
        else:
            distinct = list(dict.fromkeys(_number(v) if isinstance(v, float) else str(v) for v in self.values))
            text = ", ".join(distinct)
        unit = f" {self.unit}" if self.unit and text != "—" else ""
        count = f" ({len(self.values)} records)" if len(self.values) > 1 else ""
        return f"{self.name}: **{text}{unit}**{count}; needs {self.threshold}{'' if self.met else ' ✗'}"


def _number(value: float | int) -> str:
    return "—" if isinstance(value, float) and math.isnan(value) else f"{value:g}"


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(results_dir.glob("reliability-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records


def measures_by_figure(records: list[dict[str, Any]]) -> dict[int, list[Measure]]:
    """Per figure, its measures in first-recorded order; a test's later record of a measure replaces its
    earlier one, and a measure several tests record is shown once, over all of them."""
    latest: dict[tuple[int, str, str], dict[str, Any]] = {}
    for record in records:
        key = (int(record["figure"]), str(record["measure"]), str(record.get("test", "")))
        latest[key] = record
    grouped: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for (figure, measure, _test), record in latest.items():
        grouped.setdefault((figure, measure), []).append(record)
    result: dict[int, list[Measure]] = {}
    for (figure, measure), group in grouped.items():
        result.setdefault(figure, []).append(
            Measure(
                name=measure,
                values=tuple(r["value"] for r in group),
                unit=str(group[-1].get("unit", "")),
                threshold=str(group[-1]["threshold"]),
                met=all(bool(r["met"]) for r in group),
                tests=tuple(dict.fromkeys(str(r.get("test", "")) for r in group if r.get("test"))),
                at=max(str(r.get("at", "")) for r in group),
            )
        )
    return result


def command_for(figure: Figure, measures: list[Measure]) -> str:
    """`pytest -m figure <files>` of the tests that recorded it, else the figure's own command."""
    files = sorted({test.split("::")[0] for m in measures for test in m.tests})
    return f"pytest -m figure {' '.join(files)}" if files else figure.command


def render_table(records: list[dict[str, Any]]) -> str:
    by_figure = measures_by_figure(records)
    lines = [
        "| # | scenario | what must hold | command | last measured | result | date (UTC) |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure in FIGURES:
        measures = by_figure.get(figure.number, [])
        if measures:
            values = "<br>".join(m.shown() for m in measures)
            missed = sum(not m.met for m in measures)
            result = "met" if not missed else f"**missed** ({missed} of {len(measures)})"
            date = max(m.at for m in measures).replace("T", " ").removesuffix("Z")
        else:
            values, result, date = "not measured yet", "-", "-"
        lines.append(
            f"| {figure.number} | {figure.scenario} | {figure.must_hold} | "
            f"`{command_for(figure, measures)}` | {values} | {result} | {date} |"
        )
    unknown = sorted(set(by_figure) - {f.number for f in FIGURES})
    if unknown:
        lines.append(f"\nRecords for figures not in the list: {', '.join(map(str, unknown))}.")
    return "\n".join(lines)


def write_doc(doc: Path, table: str) -> None:
    text = doc.read_text(encoding="utf-8")
    head, start, rest = text.partition(START)
    _old, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{doc} has no {START} … {END} markers")
    doc.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    description = (__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=description)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the reliability-*.jsonl files are")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document holding the table's markers")
    args = parser.parse_args(argv)
    records = load_records(args.results)
    table = render_table(records)
    write_doc(args.doc, table)
    measured = len(measures_by_figure(records))
    print(f"{args.doc}: {measured} of {len(FIGURES)} figures measured, from {len(records)} records")
    return 0
