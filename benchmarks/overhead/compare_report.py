"""A comparison's figures (compare.py): the medians over rounds per configuration and side, the new/old
ratios, the JSON in the runs folder and the markdown table to paste into RESULTS.md (or to write into
its `compare` section with `--publish-comparison`)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import files, results_md
from benchmarks.harness.cli import say

SECTION = "compare"
WITHIN = 0.05
"""Issue 18: requests/s and overhead within 5 % of the older commit's."""


@dataclass(slots=True)
class Side:
    """One tree's figures in one configuration and round."""

    round: int
    config: str
    tree: str
    """`old` or `new`."""
    clean: bool
    """Measured without errors or misfits: only clean sides count towards the medians."""
    max_requests_per_s: float | None
    """Best requests/s over the round's concurrency points."""
    overhead_c1_p50_ms: float | None
    """p50 at concurrency 1 minus nginx's p50 at concurrency 1 in the same round."""
    errors: int = 0
    problems: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ConfigComparison:
    config: str
    old_requests_per_s: float | None
    new_requests_per_s: float | None
    old_overhead_ms: float | None
    new_overhead_ms: float | None
    rounds_old: int
    rounds_new: int
    """Clean rounds behind each side's medians."""

    @property
    def requests_ratio(self) -> float | None:
        return _ratio(self.new_requests_per_s, self.old_requests_per_s)

    @property
    def overhead_ratio(self) -> float | None:
        return _ratio(self.new_overhead_ms, self.old_overhead_ms)


def _ratio(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None or old <= 0 else new / old


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def summarize(sides: Sequence[Mapping[str, Any]], config_names: Sequence[str]) -> list[ConfigComparison]:
    """Per configuration, the median over its clean rounds of each side's figures."""
    out = []
    for config in config_names:
        clean = {tree: [s for s in sides if s["config"] == config and s["tree"] == tree and s["clean"]]
                 for tree in ("old", "new")}  # fmt: skip
        out.append(
            ConfigComparison(
                config=config,
                old_requests_per_s=_median([s["max_requests_per_s"] for s in clean["old"]]),
                new_requests_per_s=_median([s["max_requests_per_s"] for s in clean["new"]]),
                old_overhead_ms=_median([s["overhead_c1_p50_ms"] for s in clean["old"]]),
                new_overhead_ms=_median([s["overhead_c1_p50_ms"] for s in clean["new"]]),
                rounds_old=len(clean["old"]),
                rounds_new=len(clean["new"]),
            )
        )
    return out


def _number(value: float | None, text: str) -> str:
    return "-" if value is None else text.format(value)


def _within(ratio: float | None, higher_is_better: bool) -> str:
    if ratio is None:
        return "-"
    ok = ratio >= 1 - WITHIN if higher_is_better else ratio <= 1 + WITHIN
    return "yes" if ok else "**no**"


def table(comparisons: Sequence[ConfigComparison]) -> str:
    rows = [
        "| configuration | old req/s | new req/s | new/old | within 5 % | old overhead c=1 p50 ms "
        "| new overhead c=1 p50 ms | new/old | within 5 % | clean rounds old/new |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|---|",
    ]
    for c in comparisons:
        rows.append(
            f"| `{c.config}` | {_number(c.old_requests_per_s, '{:,.0f}')} | {_number(c.new_requests_per_s, '{:,.0f}')} "
            f"| {_number(c.requests_ratio, '{:.3f}')} | {_within(c.requests_ratio, True)} "
            f"| {_number(c.old_overhead_ms, '{:+.3f}')} | {_number(c.new_overhead_ms, '{:+.3f}')} "
            f"| {_number(c.overhead_ratio, '{:.3f}')} | {_within(c.overhead_ratio, False)} "
            f"| {c.rounds_old}/{c.rounds_new} |"
        )
    return "\n".join(rows)


def _points(options: Mapping[str, Any]) -> str:
    bare = ",".join(str(c) for c in options.get("concurrency", []))
    others = ",".join(str(c) for c in options.get("config_concurrency", []))
    return f"c={bare} for `bare`, c={others} for the others"


def _rounds(count: int) -> str:
    return f"{count} round{'' if count == 1 else 's'}"


def render(data: Mapping[str, Any], json_ref: str) -> str:
    """The comparison as markdown: what was compared, how, and the table."""
    old, new, options = data["old"], data["new"], data["options"]
    machine = data.get("machine", {})
    comparisons = summarize(data["sides"], options["configs"])
    dirty = " with uncommitted changes" if new.get("dirty") else ""
    return "\n".join([
        f"## Before and after, side by side: {old['commit'][:7]} vs the working tree",
        "",
        f"`{data['command']}` on {data['date']} ({machine.get('nproc', '?')} cores, load at start "
        f"{machine.get('load_average_at_start', '?')}). Old: `{old['commit'][:7]}` ({old['subject']}); new: the "
        f"working tree at `{new['commit'][:7]}`{dirty}. Both in front of the same nginx, from the same "
        "virtualenv, each gateway started from its own tree (`python -m gateway serve`, `PYTHONPATH` set to "
        f"the tree); {_rounds(options['rounds'])} of {options['duration_s']} s points ({_points(options)}), old "
        "and new back to back in each configuration, the order swapped every round. Shown: the median over "
        "the clean rounds of each round's best requests/s, and of its p50 at concurrency 1 minus nginx's in "
        f"the same round. Raw figures: `{json_ref}`.",
        "",
        table(comparisons),
        "",
    ])


def write(data: dict[str, Any], started: datetime) -> tuple[Path, Path]:
    """The JSON and the markdown in the runs folder; their paths."""
    json_path = files.write_json("compare", started, data)
    md_path = json_path.with_suffix(".md")
    md_path.write_text(render(data, files.repo_path(json_path)))
    return json_path, md_path


def publish(json_path: Path) -> Path:
    """Copy a comparison's JSON to benchmarks/results/ and write its table into RESULTS.md's `compare`
    section; the published JSON."""
    data = json.loads(json_path.read_text())
    published = files.publish(json_path)
    results_md.write(results_md.replace_section(results_md.read(), SECTION, render(data, files.repo_path(published))))
    files.retire_uncited(say)
    return published


def side_dicts(sides: Sequence[Side]) -> list[dict[str, Any]]:
    return [asdict(side) for side in sides]
