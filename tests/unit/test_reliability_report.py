"""The reliability report: records grouped into measures, the table rendered between its markers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability import END, START, main, measures_by_figure, render_table


def record(figure: int, measure: str, value: Any, *, met: bool = True, test: str = "tests/a.py::t",
           at: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"figure": figure, "measure": measure, "value": value, "unit": "s", "threshold": "≤ 1 s", "met": met,
            "test": test, "at": at}


def test_a_rerun_replaces_a_tests_record_and_several_tests_are_shown_together() -> None:
    measures = measures_by_figure([
        record(3, "closed after", 0.9, met=False, test="tests/a.py::t1"),
        record(3, "closed after", 0.2, test="tests/a.py::t1", at="2026-01-02T00:00:00Z"),  # t1 again
        record(3, "closed after", 0.4, test="tests/b.py::t2"),
    ])
    [closed] = measures[3]
    assert closed.values == (0.2, 0.4) and closed.met and closed.at == "2026-01-02T00:00:00Z"
    assert closed.shown() == "closed after: **0.2 to 0.4 s** (2 records); needs ≤ 1 s"


def test_the_table_marks_misses_and_unmeasured_figures() -> None:
    table = render_table([record(2, "error event after", 2.5, met=False, test="tests/r/test_x.py::t[killed]"),
                          record(2, "streams intact", "67/67"), record(15, "drift", float("nan"), met=False,
                                                                             test="")])
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "**2.5 s**; needs ≤ 1 s ✗" in rows["| 2"] and "**missed** (1 of 2)" in rows["| 2"]
    assert "`pytest -m figure tests/a.py tests/r/test_x.py`" in rows["| 2"]
    assert "`python -m benchmarks.soak`" in rows["| 15"] and "drift: **—**" in rows["| 15"]
    assert "not measured yet" in rows["| 1"]


def test_main_renders_every_results_file_between_the_markers(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "reliability-figures.jsonl").write_text(json.dumps(record(10, "504 after", 1.01)) + "\n")
    (tmp_path / "reliability-soak.jsonl").write_text(json.dumps(record(15, "p99 drift", 3, test="")) + "\n")
    (tmp_path / "other.jsonl").write_text("not read\n")
    doc = tmp_path / "doc.md"
    doc.write_text(f"# Intro\n\n{START}\nold table\n{END}\n\n## After\n")
    assert main(["--results", str(tmp_path), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Intro\n\n" + START + "\n| # |") and text.endswith(END + "\n\n## After\n")
    assert "old table" not in text and "**1.01 s**" in text and "**3 s**" in text
    assert "2 of 18 figures measured" in capsys.readouterr().out
    doc.write_text("no markers")
    with pytest.raises(SystemExit):
        main(["--results", str(tmp_path), "--doc", str(doc)])
