"""Metrics read from live state at scrape time, so the request path pays nothing for them: worker
health and load from the worker pool, and whether rate limits run degraded (Redis down)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.limits import FallbackLimitStore, LimitStore
from gateway.workers.active_catalog import CatalogHolder


class WorkerStateCollector(Collector):
    def __init__(self, runtimes: CatalogHolder) -> None:
        self._runtimes = runtimes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._runtimes.current.pool
        down = pool.health.down()
        up = GaugeMetricFamily("llm_gateway_worker_up", "1 when the worker passes its health checks",
                               labels=["worker", "kind"])
        in_flight = GaugeMetricFamily("llm_gateway_worker_in_flight", "Requests in flight to the worker from "
                                      "this gateway", labels=["worker"])
        queue = GaugeMetricFamily("llm_gateway_worker_queue", "Scraped queue of the worker (vLLM)",
                                  labels=["worker", "state"])
        kv = GaugeMetricFamily("llm_gateway_worker_kv_cache_usage", "Scraped KV cache usage (0-1, vLLM)",
                               labels=["worker"])
        for state in pool.workers.values():
            up.add_metric([state.name, state.spec.kind], 0.0 if state.name in down else 1.0)
            in_flight.add_metric([state.name], float(state.in_flight))
            if state.load.waiting is not None:
                queue.add_metric([state.name, "waiting"], float(state.load.waiting))
            if state.load.running is not None:
                queue.add_metric([state.name, "running"], float(state.load.running))
            if state.load.kv_usage is not None:
                kv.add_metric([state.name], state.load.kv_usage)
        yield from (up, in_flight, queue, kv)


class LimitStateCollector(Collector):
    def __init__(self, store: LimitStore) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        store = self._store
        degraded = GaugeMetricFamily("llm_gateway_limits_degraded", "1 while rate limits are decided per "
                                     "replica because Redis is unavailable")
        fallback = CounterMetricFamily("llm_gateway_limit_fallback_decisions", "Limit decisions made locally "
                                       "while Redis was unavailable")
        errors = CounterMetricFamily("llm_gateway_redis_errors", "Redis calls that failed, by operation",
                                     labels=["operation"])
        fallback_store = store if isinstance(store, FallbackLimitStore) else None
        degraded.add_metric([], 1.0 if fallback_store and fallback_store.degraded else 0.0)
        fallback.add_metric([], float(fallback_store.fallback_decisions if fallback_store else 0))
        errors.add_metric(["limits"], float(fallback_store.primary_failures if fallback_store else 0))
        yield from (degraded, fallback, errors)
