"""The gateway's Prometheus metrics, on a registry of its own (never the global one).

Labels are bounded: endpoint names (not raw paths), catalog model and rule names, worker names, status
classes, key ids (never secrets), reasons from fixed sets. With several server processes
(PROMETHEUS_MULTIPROC_DIR set), counters and histograms are written to shared files and summed at
scrape time; the live worker gauges come from the process that answers the scrape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

M = TypeVar("M", Counter, Histogram)

# From a fast cached answer to a long generation on a CPU worker.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


@dataclass
class SeedCounters:
    """The UpCoach `/api/metrics` counters, kept in this process."""

    requests_total: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    errors_total: int = 0
    active_connections: int = 0


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    """Counters and histograms (shared across processes in multi-process mode)."""
    live: CollectorRegistry = field(default_factory=CollectorRegistry)
    """Collectors that read this process's live state at scrape time (workers, limits)."""
    seed: SeedCounters = field(default_factory=SeedCounters)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("llm_gateway_requests", "Requests answered, by endpoint, catalog model, route "
                                "rule, worker and status class", ["endpoint", "model", "route", "worker",
                                                                   "status_class"], registry=r)
        self.duration = Histogram("llm_gateway_request_duration_seconds", "Time from request to the end of the "
                                  "answer", ["endpoint", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("llm_gateway_time_to_first_token_seconds", "Streams: time from request to the "
                              "first content chunk", ["model"], buckets=TTFT_BUCKETS, registry=r)
        self.overhead = Histogram("llm_gateway_overhead_seconds", "Time the gateway spent on a request outside "
                                  "waiting for workers", ["endpoint"], buckets=OVERHEAD_BUCKETS, registry=r)
        self.tokens = Counter("llm_gateway_tokens", "Tokens by model, key and direction (prompt, completion)",
                              ["model", "key_id", "direction"], registry=r)
        self.in_flight = Gauge("llm_gateway_in_flight_requests", "Requests being handled",
                               multiprocess_mode="livesum", registry=r)
        self.upstream_errors = Counter("llm_gateway_upstream_errors", "Failed tries on workers (streams broken mid-way "
                                       "included), by kind",
                                       ["worker", "kind"], registry=r)
        self.retries = Counter("llm_gateway_retries", "Tries beyond the first, by model", ["model"], registry=r)
        self.fallbacks = Counter("llm_gateway_fallbacks", "Requests answered by a fallback model",
                                 ["from_model", "to_model"], registry=r)
        self.ejections = Counter("llm_gateway_worker_ejections", "Outlier ejections", ["worker"], registry=r)
        self.cache = Counter("llm_gateway_cache_requests", "Cache lookups by result (hit, miss, bypass, "
                             "coalesced)", ["result"], registry=r)
        self.cache_bytes = Counter("llm_gateway_cache_stored_bytes", "Bytes written to the cache", registry=r)
        self.rate_limited = Counter("llm_gateway_rate_limited", "Requests refused by a limit", ["reason"],
                                    registry=r)
        self.queue_depth = Gauge("llm_gateway_queue_depth", "Requests waiting for a worker slot (every worker of "
                                 "the model at its max_concurrent), by model", ["model"],
                                 multiprocess_mode="livesum", registry=r)
        self.overloaded = Counter("llm_gateway_overload_rejections", "Requests refused with 503 because every "
                                  "worker of the model was full: queue_full (the queue was full too) or "
                                  "queue_timeout (waited the queue's max_wait)", ["model", "reason"], registry=r)

    def exposition(self) -> bytes:
        """The text of `GET /metrics`."""
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            return generate_latest(self.registry) + generate_latest(self.live)
        shared = CollectorRegistry()
        MultiProcessCollector(shared, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(shared) + generate_latest(self.live)


class LabelledChildren(Generic[M]):
    """`metric.labels(*values)`, memoized: prometheus_client checks the values and takes a lock on every
    `labels` call, which the per-request metrics would pay on every request. Label values are bounded
    (see above), so is this cache."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


def status_class(status: int) -> str:
    return "499" if status == 499 else f"{status // 100}xx"
