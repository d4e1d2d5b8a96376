"""The overview's figures over the last minutes, from the gateway's own Prometheus counters.

Nothing is added to the request path: the counters and histograms the request observer already keeps
(`gateway.observability.metrics`) are read when the console asks (at most once a second) and kept
as snapshots for `HISTORY_S`; rates and percentiles are differences between two snapshots. The first
snapshot is taken when the console's routes are built, with the app, so a window reaching back past
the oldest snapshot covers everything since then. Counted are inference requests (those that reached a
model); figures are this process's (with `GATEWAY_WORKERS` > 1, the process that answers).
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

HISTORY_S = 15 * 60.0
MIN_SPACING_S = 1.0
Buckets = dict[float, float]


@dataclass
class Snapshot:
    at: float
    requests: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    errors: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """By `model:<name>` and `worker:<name>`, and `all`; errors are 5xx answers."""
    duration: dict[str, Buckets] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    ttft: dict[str, Buckets] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    tokens: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Completion tokens by model."""
    cache: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def read_snapshot(registry: CollectorRegistry, at: float) -> Snapshot:
    snap = Snapshot(at)
    for metric in registry.collect():
        for sample in metric.samples:
            labels, value = sample.labels, sample.value
            if sample.name == "llm_gateway_requests_total" and labels.get("model"):
                failed = labels.get("status_class") == "5xx"
                for name in ("all", "model:" + labels["model"], "worker:" + labels["worker"]):
                    if name != "worker:":
                        snap.requests[name] += value
                        snap.errors[name] += value if failed else 0.0
            elif sample.name == "llm_gateway_request_duration_seconds_bucket" and labels.get("model"):
                for name in ("all", labels["model"]):
                    snap.duration[name][float(labels["le"])] += value
            elif sample.name == "llm_gateway_time_to_first_token_seconds_bucket" and labels.get("model"):
                for name in ("all", labels["model"]):
                    snap.ttft[name][float(labels["le"])] += value
            elif sample.name == "llm_gateway_tokens_total" and labels.get("direction") == "completion":
                snap.tokens[labels["model"]] += value
                snap.tokens["all"] += value
            elif sample.name == "llm_gateway_cache_requests_total":
                snap.cache[labels["result"]] += value
    return snap


def quantile(q: float, newer: Buckets, older: Buckets) -> float | None:
    """The q-quantile of the observations between two cumulative histograms (linear within a bucket,
    as Prometheus' histogram_quantile); None without observations."""
    bounds = sorted(newer)
    counts = [newer[b] - older.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    target, lower, below = q * counts[-1], 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= target:
            if math.isinf(bound):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((target - below) / inside if inside else 0.0)
        lower, below = bound, cumulative
    return lower


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class MetricsWindow:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._snapshots: deque[Snapshot] = deque([read_snapshot(registry, time.monotonic())])

    def refresh(self) -> Snapshot:
        """A reading now, kept in the history unless the last kept one is under a second old; snapshots
        past the history dropped (one older than the history is kept, as the base of the longest window)."""
        now = time.monotonic()
        reading = read_snapshot(self._registry, now)
        if now - self._snapshots[-1].at >= MIN_SPACING_S:
            self._snapshots.append(reading)
        while len(self._snapshots) > 2 and self._snapshots[1].at < now - HISTORY_S:
            self._snapshots.popleft()
        return reading

    def _base(self, newest: Snapshot, window_s: float) -> Snapshot:
        base = self._snapshots[0]
        for snap in self._snapshots:
            if snap.at <= newest.at - window_s:
                base = snap
        return base

    def overview(self, window_s: float = 60.0) -> dict[str, Any]:
        newest = self.refresh()
        base = self._base(newest, window_s)
        span = max(newest.at - base.at, 1e-9)
        rows: dict[str, dict[str, Any]] = {}
        for name in sorted(newest.requests):
            count = newest.requests[name] - base.requests.get(name, 0.0)
            errors = newest.errors[name] - base.errors.get(name, 0.0)
            row: dict[str, Any] = {"requests": round(count), "requests_per_s": round(count / span, 3),
                                   "errors": round(errors), "error_rate": round(errors / count, 4) if count else None}
            model = "all" if name == "all" else name.removeprefix("model:")
            if name == "all" or name.startswith("model:"):
                duration, ttft = newest.duration.get(model, {}), newest.ttft.get(model, {})
                row.update({
                    "p50_ms": _ms(quantile(0.5, duration, base.duration.get(model, {}))),
                    "p99_ms": _ms(quantile(0.99, duration, base.duration.get(model, {}))),
                    "ttft_p50_ms": _ms(quantile(0.5, ttft, base.ttft.get(model, {}))),
                    "tokens_per_s": round((newest.tokens.get(model, 0.0) - base.tokens.get(model, 0.0)) / span, 2)})
            rows[name] = row
        hits = {r: newest.cache[r] - base.cache.get(r, 0.0) for r in newest.cache}
        looked_up = sum(v for r, v in hits.items() if r != "bypass")
        return {"window_s": round(span, 1), "total": rows.pop("all", None),
                "models": {k.removeprefix("model:"): v for k, v in rows.items() if k.startswith("model:")},
                "workers": {k.removeprefix("worker:"): v for k, v in rows.items() if k.startswith("worker:")},
                "cache_hit_rate": round(hits.get("hit", 0.0) / looked_up, 4) if looked_up else None,
                "series": self.series()}

    def series(self) -> list[dict[str, float]]:
        """Requests/s, errors/s and completion tokens/s between consecutive snapshots, oldest first."""
        points = []
        snaps = list(self._snapshots)
        for older, newer in itertools.pairwise(snaps):
            span = max(newer.at - older.at, 1e-9)
            points.append({"t": round(newer.at - snaps[-1].at, 1),
                           "requests_per_s": round((newer.requests["all"] - older.requests["all"]) / span, 3),
                           "errors_per_s": round((newer.errors["all"] - older.errors["all"]) / span, 3),
                           "tokens_per_s": round((newer.tokens["all"] - older.tokens["all"]) / span, 2)})
        return points
