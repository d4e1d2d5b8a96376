"""The soak's figures from its samples, and where they go: a JSON file, the soak section of
`benchmarks/RESULTS.md` and the figure-15 records of the reliability report (`tests/figures.py`).

Only the text between `<!-- soak:start -->` and `<!-- soak:end -->` is ever rewritten (appended at the
end when absent): the soak run's part before `<!-- soak-leak -->`, the leak run's after it.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.figures import FIGURES_ENV, record_figure

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
FIGURES_FILE = "reliability-soak.jsonl"
START, END, LEAK_PART = "<!-- soak:start -->", "<!-- soak:end -->", "<!-- soak-leak -->"
FIGURE = 15

MAX_DRIFT_PCT_PER_H = 5.0
MAX_P99_DRIFT_PCT = 10.0
MAX_RSS_RETURN_PCT = 10.0
FD_RETURN_MARGIN = 10
FD_THRESHOLD = (
    f"idle after the load ≤ idle before it + {FD_RETURN_MARGIN}, the gateway's Redis connections "
    "(pools: bounded, kept open) aside; under load they follow the open connections"
)


@dataclass(slots=True)
class Sample:
    t_s: float
    """Seconds since the open-loop load started."""
    phase: str
    """`before` (idle, before the load; t_s 0), `warm-up`, `load` or `idle` (after the load stopped)."""
    rss_mb: float
    fds: int
    requests_done: int
    window_requests: int
    """Normal requests completed (200, whole answer) in the window that ends here."""
    p50_ms: float | None
    p99_ms: float | None
    client_in_flight: int
    redis_keys: int
    redis_keys_without_ttl: int
    redis_exempt_keys: int
    redis_used_mb: float
    gateway_redis_connections: int
    """Of `fds`, the gateway's connections to Redis (its pool: bounded, grows with the concurrency seen)."""
    other_cpu_pct: float
    """CPU used by processes outside this run, % of one core, over the window (noise on a shared box)."""


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares (slope, intercept) of y over x; None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    result = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
    return result.slope, result.intercept


def _pct(new: float | None, base: float | None) -> float | None:
    if new is None or base is None or base <= 0:
        return None
    return round(100.0 * (new - base) / base, 2)


@dataclass(slots=True)
class Verdict:
    measure: str
    value: float | int | str | None
    unit: str
    threshold: str
    met: bool | None
    """None: not enough samples to tell."""


def memory_figures(samples: list[Sample], warmup_s: float) -> dict[str, float | None]:
    loaded = [s for s in samples if s.phase == "load"]
    idle = [s for s in samples if s.phase == "idle"]
    fit = _fit([(s.t_s / 3600.0, s.rss_mb) for s in loaded])
    warm = loaded[0].rss_mb if loaded else None
    drift = slope = None
    if fit is not None:
        slope, intercept = fit
        base = intercept + slope * warmup_s / 3600.0
        drift = round(100.0 * slope / base, 2) if base > 0 else None
    return {
        "rss_warm_mb": warm,
        "rss_peak_mb": max((s.rss_mb for s in samples), default=None),
        "rss_end_of_load_mb": loaded[-1].rss_mb if loaded else None,
        "rss_after_idle_mb": idle[-1].rss_mb if idle else None,
        "rss_slope_mb_per_h": None if slope is None else round(slope, 3),
        "memory_drift_pct_per_h": drift,
        "rss_after_idle_vs_warm_pct": _pct(idle[-1].rss_mb if idle else None, warm),
    }


def fd_figures(samples: list[Sample]) -> dict[str, int | bool | None]:
    """Open FDs under load (they follow the open connections) and idle before and after the load, less
    the Redis pool's connections (bounded, they stay open): a leak shows as more FDs after than before."""
    loaded = [s.fds for s in samples if s.phase == "load"]
    before = next((s for s in samples if s.phase == "before"), None)
    after = next((s for s in reversed(samples) if s.phase == "idle"), None)
    stable = None
    if before is not None and after is not None:
        stable = (
            after.fds - after.gateway_redis_connections
            <= before.fds - before.gateway_redis_connections + FD_RETURN_MARGIN
        )
    return {
        "fd_min": min(loaded, default=None),
        "fd_max": max(loaded, default=None),
        "fd_before_load": None if before is None else before.fds,
        "fd_after_idle": None if after is None else after.fds,
        "redis_pool_before_load": None if before is None else before.gateway_redis_connections,
        "redis_pool_after_idle": None if after is None else after.gateway_redis_connections,
        "fd_stable": stable,
        "client_in_flight_max": max((s.client_in_flight for s in samples), default=None),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def p99_figures(
    done_at: list[float], latency_s: list[float], load_start: float, warm_end: float, load_end: float
) -> dict[str, float | int | None]:
    """p99 of the normal requests that ended in the first and the last 10 % of the post-warm-up time."""
    span = (load_end - warm_end) * 0.1
    first = [lat for at, lat in zip(done_at, latency_s, strict=True) if warm_end <= at < warm_end + span]
    last = [lat for at, lat in zip(done_at, latency_s, strict=True) if load_end - span <= at <= load_end]
    after = [lat for at, lat in zip(done_at, latency_s, strict=True) if at >= warm_end]
    p_first, p_last = percentile(first, 0.99), percentile(last, 0.99)
    return {
        "p99_first_ms": _ms(p_first),
        "p99_last_ms": _ms(p_last),
        "p99_first_requests": len(first),
        "p99_last_requests": len(last),
        "p99_drift_pct": _pct(p_last, p_first),
        "p50_after_warmup_ms": _ms(percentile(after, 0.5)),
        "p99_after_warmup_ms": _ms(percentile(after, 0.99)),
        "load_start_offset_s": round(warm_end - load_start, 1),
    }


def mismatch(a: Counter[str] | dict[str, int], b: Counter[str] | dict[str, int]) -> int:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b))


def verdicts(figures: dict[str, object], duration_label: str, leak: bool) -> list[Verdict]:
    """The figure-15 measures, each against its threshold; a leak run (issue 11) adds RSS after the idle."""

    def num(name: str) -> float | None:
        value = figures.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    back = num("rss_after_idle_vs_warm_pct")
    returned = Verdict(
        f"RSS after the load and an idle vs warm ({duration_label})",
        back,
        "%",
        f"≤ +{MAX_RSS_RETURN_PCT:g} %",
        None if back is None else back <= MAX_RSS_RETURN_PCT,
    )
    drift, p99 = num("memory_drift_pct_per_h"), num("p99_drift_pct")
    fd_stable = figures.get("fd_stable")
    no_ttl, metric_diff = figures.get("redis_keys_without_ttl_max"), figures.get("metrics_mismatch")
    missing = figures.get("responses_without_request_id")
    soak = [
        Verdict(
            f"memory drift ({duration_label})",
            drift,
            "%/h",
            f"< {MAX_DRIFT_PCT_PER_H:g} %/h",
            None if drift is None else drift < MAX_DRIFT_PCT_PER_H,
        ),
        Verdict(
            f"open file descriptors ({duration_label})",
            (
                f"{figures.get('fd_min')}-{figures.get('fd_max')} under load; idle {figures.get('fd_before_load')} "
                f"before, {figures.get('fd_after_idle')} after (Redis pool {figures.get('redis_pool_before_load')}"
                f" -> {figures.get('redis_pool_after_idle')})"
            ),
            "",
            FD_THRESHOLD,
            fd_stable if isinstance(fd_stable, bool) else None,
        ),
        Verdict(
            f"p99 drift, last 10 % vs first 10 % after warm-up ({duration_label})",
            p99,
            "%",
            f"< {MAX_P99_DRIFT_PCT:g} %",
            None if p99 is None else p99 < MAX_P99_DRIFT_PCT,
        ),
        Verdict(
            f"Redis keys without a TTL ({duration_label})",
            no_ttl if isinstance(no_ttl, int) else None,
            "keys",
            "0 (API-key records llmgw:key:*, llmgw:keyid:* are persistent by design: reported apart)",
            no_ttl == 0 if isinstance(no_ttl, int) else None,
        ),
        Verdict(
            f"/metrics requests by status class vs what clients saw: differences ({duration_label})",
            metric_diff if isinstance(metric_diff, int) else None,
            "requests",
            "0",
            metric_diff == 0 if isinstance(metric_diff, int) else None,
        ),
        Verdict(
            f"responses without x-request-id ({duration_label})",
            missing if isinstance(missing, int) else None,
            "responses",
            "0",
            missing == 0 if isinstance(missing, int) else None,
        ),
    ]
    return [returned, *soak] if leak else soak


def record(verdicts_: list[Verdict], out_dir: Path) -> Path:
    """Write the verdicts as figure-15 records, replacing the previous run's (`$RELIABILITY_FIGURES`
    is set to the soak's own file for these writes)."""
    path = out_dir / FIGURES_FILE
    path.write_text("")
    os.environ[FIGURES_ENV] = str(path)
    for v in verdicts_:
        value: float | int | str = "not measured" if v.value is None else v.value
        record_figure(FIGURE, v.measure, value, threshold=v.threshold, met=bool(v.met), unit=v.unit)
    return path


def write_json(data: dict[str, object], out_dir: Path, stamp: str, leak: bool) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{'leak' if leak else 'soak'}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "-"
    return str(value)


def _met(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "**no**")


def markdown(data: dict[str, object], verdicts_: list[Verdict], json_path: Path, leak: bool) -> str:
    figures = data["figures"]
    assert isinstance(figures, dict)
    options = data["options"]
    assert isinstance(options, dict)
    rel = json_path.relative_to(HERE.parent) if json_path.is_relative_to(HERE.parent) else json_path
    title = "Leak run (issue 11)" if leak else "Soak (reliability figure 15)"
    lines = [
        f"### {title}: {data['started']}",
        "",
        f"`{data['command']}`: {data['summary']} Raw figures and every sample: `{rel}`.",
        "",
        "| measure | value | threshold | met |",
        "|---|---:|---|---|",
        *(f"| {v.measure} | {f'{_fmt(v.value)} {v.unit}'.strip()} | {v.threshold} | {_met(v.met)} |"
          for v in verdicts_),
        "",
        "| also measured | value |",
        "|---|---:|",
    ]
    extra = (
        "capacity_rps",
        "rate_rps",
        "requests_sent",
        "skipped_arrivals",
        "rss_warm_mb",
        "rss_peak_mb",
        "rss_end_of_load_mb",
        "rss_after_idle_mb",
        "rss_after_idle_vs_warm_pct",
        "memory_drift_pct_per_h",
        "fd_min",
        "fd_max",
        "fd_before_load",
        "fd_after_idle",
        "redis_pool_before_load",
        "redis_pool_after_idle",
        "client_in_flight_max",
        "p50_after_warmup_ms",
        "p99_after_warmup_ms",
        "p99_first_ms",
        "p99_last_ms",
        "redis_keys_max",
        "redis_exempt_keys_max",
        "client_by_class",
        "metrics_by_class",
        "log_by_class",
        "log_mismatch",
        "fault_requests",
        "fault_mismatches",
        "silent_truncations",
        "malformed_errors",
        "unexpected_normal",
        "other_cpu_pct_mean",
    )
    lines += [f"| {name} | {_fmt(figures.get(name))} |" for name in extra if name in figures]
    lines += ["", f"Method: {data['method']}"]
    return "\n".join(lines)


HEADER = "## Soak and leak runs\n\nGenerated by `python -m benchmarks.soak` (`make soak`, `make leak`).\n"


def update_section(part: str, leak: bool) -> None:
    """Replace the soak's or the leak run's part of the soak section of RESULTS.md (markers alone on
    their lines, as `benchmarks/report.py` expects of the sections it keeps)."""
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    start, end = old.find(START), old.find(END)
    soak_part = leak_part = ""
    if start != -1 and end > start:
        inner = old[start + len(START) : end].strip("\n")
        soak_part, _, leak_part = inner.partition(LEAK_PART)
        soak_part = soak_part.strip("\n").removeprefix(HEADER.strip("\n")).strip("\n")
        leak_part = leak_part.strip("\n")
        before, after = old[:start], old[end + len(END) :]
    else:
        before, after = (old.rstrip("\n") + "\n\n" if old else ""), "\n"
    if leak:
        leak_part = part.strip("\n")
    else:
        soak_part = part.strip("\n")
    body = "\n\n".join(text for text in (HEADER.strip("\n"), soak_part) if text)
    leak_part = leak_part or "No leak run yet: `make leak`."
    section = f"{START}\n{body}\n\n{LEAK_PART}\n{leak_part}\n{END}"
    RESULTS_MD.write_text(before + section + after)
