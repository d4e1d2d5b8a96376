"""The reliability table in docs/reliability.md: each of the fifteen figures, the command that reproduces
it and the last values measured, from every `benchmarks/results/reliability-*.jsonl` (records written by
`tests/figures.py::record_figure`: the `make reliability` test run, the soak).

Run as `python -m benchmarks.reliability_report`; the table replaces the text between the markers."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
DOC = HERE.parent / "docs" / "reliability.md"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


@dataclass(frozen=True, slots=True)
class Figure:
    number: int
    scenario: str
    must_hold: str
    command: str
    """How to reproduce it when no record names its test (the soak)."""


FIGURES = (
    Figure(
        1,
        "200 concurrent non-streaming requests; one of three workers is killed",
        "≥ 99.9 % succeed; retries land on other workers, within the retry budget; the dead worker gets no "
        "new traffic within 1 s or 5 failures",
        "pytest -m figure tests/service/test_resilience.py",
    ),
    Figure(
        2,
        "100 streams; the worker serving a third of them is killed, or freezes",
        "its clients get an SSE error event then `[DONE]` within 2 s (killed) or the idle timeout + 10 % "
        "(frozen); no silent truncation, no duplicated tokens; all other streams complete",
        "pytest tests/reliability/test_worker_lost_mid_stream.py",
    ),
    Figure(
        3,
        "clients disconnect before the first byte, mid-stream, during a non-streaming call",
        "the upstream connection closes within 500 ms; in-flight gauges back to 0 within 2 s; logged as 499",
        "pytest -m figure tests/service/test_disconnects.py",
    ),
    Figure(
        4,
        "3 gateway replicas, a key limited to 100 requests/min, concurrent clients",
        "exactly 100 admitted; `Retry-After` correct; no 429 for other keys",
        "pytest -m figure tests/service/test_limits_across_replicas.py",
    ),
    Figure(
        5,
        "token budget (reserve, then reconcile) with failures and disconnects",
        "the counter ends equal to the tokens used; overshoot at most one reservation",
        "pytest -m figure tests/service/test_limits_across_replicas.py",
    ),
    Figure(
        6,
        "Redis paused, then killed, under load",
        "fail-open: no 5xx, per-replica limits; fail-closed: 503 with `Retry-After`; recovery within 5 s",
        "pytest -m figure tests/service/test_limits_across_replicas.py",
    ),
    Figure(
        7,
        "identical requests from two tenants",
        "no cross-tenant cache hit; `Cache-Control: no-store` / `no-cache` honoured",
        "pytest -m figure tests/service/test_cache.py",
    ),
    Figure(
        8,
        "100 identical requests on a cold cache; streams cut midway",
        "one upstream call per burst (coalesced); cut or failed streams leave no cache entry",
        "pytest -m figure tests/service/test_cache.py",
    ),
    Figure(
        9,
        "5 times capacity with a bounded queue",
        "excess gets 503 + `Retry-After` fast (p99 ≤ 50 ms); accepted p99 ≤ twice unloaded; memory back to baseline",
        "pytest tests/reliability/test_overload.py",
    ),
    Figure(
        10,
        "workers that never answer, stall after 3 chunks, or exceed the deadline",
        "504 at the timeout ± 10 %; an error event at the idle timeout; total ≤ deadline + 100 ms even with retries",
        "pytest tests/reliability/test_timeouts.py",
    ),
    Figure(
        11,
        "SIGTERM with streams and non-streaming calls in flight",
        "readiness fails within 1 s; non-streaming calls complete; open streams get an error event at the "
        "deadline; exit within drain + 2 s",
        "pytest tests/reliability/test_shutdown.py",
    ),
    Figure(
        12,
        "every route with missing, wrong, revoked and expired keys; user keys on admin routes",
        "401 / 403 every time; revocation on all replicas within 5 s; keys stored only as hashes",
        "pytest -m figure tests/service/test_auth.py tests/service/test_limits_across_replicas.py",
    ),
    Figure(
        13,
        "the gateway at DEBUG log level",
        "no API key, upstream credential or `Authorization` header in logs, error bodies or `/metrics`",
        "pytest -m figure tests/service/test_observability.py",
    ),
    Figure(
        14,
        "schemathesis over the OpenAPI schema, oversize bodies and headers, SSRF attempts",
        "no 5xx from bad input; 413 / 431 for oversize; no outbound call to a client-supplied URL; the "
        "client's `Authorization` never reaches workers",
        "pytest tests/reliability/test_fuzzing.py",
    ),
    Figure(
        15,
        "one-hour soak at half capacity with 1 % injected faults",
        "memory drift < 5 %/h; file descriptors stable; p99 drift < 10 %; every Redis key has a TTL; "
        "metrics equal what clients saw",
        "python -m benchmarks.soak",
    ),
)


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the reliability-*.jsonl files are")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document holding the table's markers")
    args = parser.parse_args(argv)
    records = load_records(args.results)
    table = render_table(records)
    write_doc(args.doc, table)
    measured = len(measures_by_figure(records))
    print(f"{args.doc}: {measured} of {len(FIGURES)} figures measured, from {len(records)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
