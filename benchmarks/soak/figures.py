"""The soak's figures: what its samples and its clients' tallies say about memory, file descriptors,
latency drift, Redis keys, and the gateway's own counters and log lines against what the clients saw."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.soak.run import Run

FD_RETURN_MARGIN = 10


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
    long_streams_open: int
    """Of `client_in_flight`, the long streams."""
    redis_keys: int
    redis_keys_without_ttl: int
    redis_exempt_keys: int
    redis_used_mb: float
    gateway_redis_connections: int
    """Of `fds`, the gateway's connections to Redis (its pool: bounded, grows with the concurrency seen)."""
    other_cpu_pct: float
    """CPU used by processes outside this run, % of one core, over the window (noise on a shared box)."""
    malloc_in_use_mb: float | None = None
    """The gateway's allocators (`gateway/observability/allocator_stats.py`), when asked for: glibc
    malloc's memory in use..."""
    malloc_free_kept_mb: float | None = None
    """...free but kept in its heap (fragmentation)..."""
    malloc_mmapped_mb: float | None = None
    python_blocks: int | None = None
    """...the blocks Python's allocator (pymalloc) has handed out (objects alive)..."""
    pymalloc_arenas_mb: float | None = None
    """...the 1 MiB arenas it holds for them..."""
    pymalloc_allocated_mb: float | None = None
    """...and the bytes its blocks hold."""


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


def drift_pct_per_h(points: list[tuple[float, float]], warmup_s: float) -> float | None:
    """The slope of a least-squares line through (seconds, value) points, over the line's value at the end of
    warm-up, in % per hour; None with fewer than two distinct times."""
    fit = _fit([(t_s / 3600.0, value) for t_s, value in points])
    if fit is None:
        return None
    slope, intercept = fit
    base = intercept + slope * warmup_s / 3600.0
    return round(100.0 * slope / base, 2) if base > 0 else None


def memory_figures(samples: list[Sample], warmup_s: float) -> dict[str, float | None]:
    loaded = [s for s in samples if s.phase == "load"]
    idle = [s for s in samples if s.phase == "idle"]
    fit = _fit([(s.t_s / 3600.0, s.rss_mb) for s in loaded])
    warm = loaded[0].rss_mb if loaded else None
    slope = None if fit is None else fit[0]
    drift = drift_pct_per_h([(s.t_s, s.rss_mb) for s in loaded], warmup_s)
    in_use = [(s.t_s, s.malloc_in_use_mb) for s in loaded if s.malloc_in_use_mb is not None]
    blocks = [(s.t_s, float(s.python_blocks)) for s in loaded if s.python_blocks is not None]
    kept = [s.malloc_free_kept_mb for s in loaded if s.malloc_free_kept_mb is not None]
    arenas = [(s.t_s, s.pymalloc_arenas_mb) for s in loaded if s.pymalloc_arenas_mb is not None]
    held = [(s.t_s, s.pymalloc_allocated_mb) for s in loaded if s.pymalloc_allocated_mb is not None]
    return {
        "pymalloc_arenas_drift_pct_per_h": drift_pct_per_h(arenas, warmup_s),
        "pymalloc_allocated_drift_pct_per_h": drift_pct_per_h(held, warmup_s),
        "pymalloc_arenas_warm_mb": arenas[0][1] if arenas else None,
        "pymalloc_arenas_end_of_load_mb": arenas[-1][1] if arenas else None,
        "pymalloc_allocated_warm_mb": held[0][1] if held else None,
        "pymalloc_allocated_end_of_load_mb": held[-1][1] if held else None,
        "malloc_in_use_drift_pct_per_h": drift_pct_per_h(in_use, warmup_s),
        "python_blocks_drift_pct_per_h": drift_pct_per_h(blocks, warmup_s),
        "malloc_in_use_warm_mb": in_use[0][1] if in_use else None,
        "malloc_in_use_end_of_load_mb": in_use[-1][1] if in_use else None,
        "malloc_free_kept_warm_mb": kept[0] if kept else None,
        "malloc_free_kept_end_of_load_mb": kept[-1] if kept else None,
        "rss_warm_mb": warm,
        "rss_peak_mb": max((s.rss_mb for s in samples), default=None),
        "rss_end_of_load_mb": loaded[-1].rss_mb if loaded else None,
        "rss_after_idle_mb": idle[-1].rss_mb if idle else None,
        "rss_slope_mb_per_h": None if slope is None else round(slope, 3),
        "memory_drift_pct_per_h": drift,
        "rss_after_idle_vs_warm_pct": _pct(idle[-1].rss_mb if idle else None, warm),
    }


RSS_STEP_MB = 0.5


def rss_steps(samples: list[Sample]) -> list[dict[str, float | int | bool | None]]:
    """Each rise of RSS by `RSS_STEP_MB` or more from one sample to the next after warm-up, with what the gateway was
    carrying then: a step at a new peak of open connections (FDs) or a latency spike is memory taken for
    a burst that the allocator keeps, not a leak that grows with time."""
    steps: list[dict[str, float | int | bool | None]] = []
    fd_peak = 0
    for before, after in itertools.pairwise(samples):
        if after.rss_mb - before.rss_mb >= RSS_STEP_MB and before.phase == after.phase == "load":
            steps.append({
                "t_s": after.t_s, "rss_from_mb": before.rss_mb, "rss_to_mb": after.rss_mb, "fds": after.fds,
                "new_fd_peak": after.fds > fd_peak, "client_in_flight": after.client_in_flight,
                "p99_ms": after.p99_ms, "other_cpu_pct": after.other_cpu_pct,
                "malloc_in_use_mb": after.malloc_in_use_mb, "malloc_free_kept_mb": after.malloc_free_kept_mb,
                "pymalloc_arenas_mb": after.pymalloc_arenas_mb, "pymalloc_allocated_mb": after.pymalloc_allocated_mb,
            })  # fmt: skip
        fd_peak = max(fd_peak, before.fds, after.fds)
    return steps


def fd_figures(samples: list[Sample]) -> dict[str, float | int | bool | None]:
    """Open FDs under load (they follow the open connections) and idle before and after the load, less
    the Redis pool's connections (bounded, they stay open): a leak shows as more FDs after than before."""
    loaded_samples = [s for s in samples if s.phase == "load"]
    loaded = [s.fds for s in loaded_samples]
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
        "long_streams_open_max": max((s.long_streams_open for s in samples), default=None),
        "long_streams_open_mean": (
            round(statistics.fmean(s.long_streams_open for s in loaded_samples), 1) if loaded_samples else None
        ),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def p99_figures(
    done_at: list[float], latency_s: list[float], load_start: float, warm_end: float, load_end: float
) -> dict[str, float | int | None]:
    """p99 of the normal requests (long streams and faults aside) that ended in the first and the last 10 % of
    the post-warm-up time, which ends at `load_end`: when the arrivals stopped."""
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


def timeline(sent_at: float, ended_at: float, line: dict[str, Any] | None) -> dict[str, float | str | None]:
    """When the client sent and ended (had its answer or left) against when the gateway began and ended the
    request (its log line's `timestamp` is the end, less `duration_ms` the start): ms from the client's send."""
    times: dict[str, float | str | None] = {
        "client_sent": datetime.fromtimestamp(sent_at, UTC).isoformat(),
        "client_ended_ms": round((ended_at - sent_at) * 1000, 1),
        "gateway_began_ms": None,
        "gateway_ended_ms": None,
    }
    stamp, duration = (None, None) if line is None else (line.get("timestamp"), line.get("duration_ms"))
    if isinstance(stamp, str) and isinstance(duration, int | float):
        ended = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        times["gateway_ended_ms"] = round((ended - sent_at) * 1000, 1)
        times["gateway_began_ms"] = round((ended - duration / 1000 - sent_at) * 1000, 1)
    return times


def fault_figures(run: Run) -> dict[str, object]:
    """The gateway's own log line of each fault request (they carry their own ids) against the client."""
    by_kind: dict[str, Counter[str]] = {}
    mismatches: list[dict[str, object]] = []
    for request_id, (kind, seen, sent_at, ended_at) in run.tally.fault_requests.items():
        line = run.logged.by_id.get(request_id)
        status = None if line is None else line.get("status")
        logged = "no log line" if not isinstance(status, int) else ("499" if status == 499 else f"{status // 100}xx")
        error = None if line is None else line.get("error")
        by_kind.setdefault(kind, Counter())[f"{status} {error}" if error else str(status)] += 1
        if logged != seen:
            mismatches.append({
                "request_id": request_id, "kind": kind, "client": seen, "gateway": logged, "gateway_line": line,
                **timeline(sent_at, ended_at, line),
            })  # fmt: skip
    return {
        "fault_requests": len(run.tally.fault_requests),
        "gateway_by_fault_kind": {kind: dict(c.most_common()) for kind, c in sorted(by_kind.items())},
        "fault_mismatches": len(mismatches),
        "fault_mismatch_examples": mismatches[:20],
    }


def figures(run: Run) -> dict[str, object]:
    tally, samples = run.tally, run.samples
    warm_end = run.load_start + run.warmup_s
    loaded = [s for s in samples if s.phase == "load"]
    client = {k: v for k, v in sorted(tally.by_class.items())}
    metrics = {k: v for k, v in sorted(run.metrics_by_class.items()) if v}
    logged = dict(sorted(run.logged.by_class.items()))
    return {
        "capacity_rps": None if run.capacity_rps is None else round(run.capacity_rps, 1),
        "rate_rps": run.rate,
        "warmup_s": run.warmup_s,
        "load_s": round(run.load_end - run.load_start, 1),
        "requests_sent": run.stats.sent,
        "skipped_arrivals": run.stats.skipped,
        "generator_max_lag_s": round(run.stats.max_lag_s, 3),
        **memory_figures(samples, run.warmup_s),
        "rss_steps": rss_steps(samples),
        **fd_figures(samples),
        **p99_figures(
            list(tally.done_at), list(tally.latency_s), run.load_start, warm_end, run.arrivals_end or run.load_end
        ),
        "redis_keys_max": max((s.redis_keys for s in samples), default=None),
        "redis_keys_without_ttl_max": max((s.redis_keys_without_ttl for s in samples), default=None),
        "redis_exempt_keys_max": max((s.redis_exempt_keys for s in samples), default=None),
        "redis_key_families_at_end": run.final_keys.families,
        "client_by_class": client,
        "metrics_by_class": metrics,
        "metrics_mismatch": mismatch(run.metrics_by_class, tally.by_class),
        "log_by_class": logged,
        "log_mismatch": mismatch(run.logged.by_class, tally.by_class),
        "log_warnings": dict(run.logged.warnings.most_common(10)),
        "log_lines_not_json": run.logged.not_json,
        "outcomes_by_kind": {kind: dict(c.most_common()) for kind, c in sorted(tally.by_kind.items())},
        **fault_figures(run),
        "cache_header": dict(tally.cache.most_common()),
        "responses": tally.responses,
        "responses_without_request_id": tally.missing_request_id,
        "wrong_request_id": tally.wrong_request_id,
        "silent_truncations": tally.silent_truncations,
        "malformed_errors": tally.malformed_errors,
        "unexpected_normal": tally.unexpected_normal,
        "long_streams_completed": tally.long_completed,
        "long_stream_seconds_mean": (
            round(tally.long_seconds / tally.long_completed, 1) if tally.long_completed else None
        ),
        "unexpected_normal_log_lines": {i: run.logged.by_id.get(i) for i in tally.unexpected_ids},
        "problems": tally.problems,
        "other_cpu_pct_mean": round(sum(s.other_cpu_pct for s in loaded) / len(loaded), 1) if loaded else None,
    }


