"""The overview's figures: rates and percentiles from the gateway's own counters, between two readings."""

from __future__ import annotations

import pytest

from gateway.http.console.metrics_window import MetricsWindow, quantile
from gateway.observability.metrics import GatewayMetrics


def test_quantiles_interpolate_within_buckets_between_two_readings() -> None:
    older = {0.1: 10.0, 0.5: 10.0, 1.0: 10.0, float("inf"): 10.0}
    newer = {0.1: 10.0, 0.5: 20.0, 1.0: 30.0, float("inf"): 30.0}
    assert quantile(0.5, newer, older) == 0.5
    assert quantile(0.25, newer, older) == pytest.approx(0.3)
    assert quantile(0.5, older, older) is None
    assert quantile(0.99, {1.0: 0.0, float("inf"): 5.0}, {}) == 1.0


def test_the_overview_counts_requests_errors_tokens_and_cache_hits_per_model_and_worker() -> None:
    metrics = GatewayMetrics()
    window = MetricsWindow(metrics.registry)
    for worker, status in (("a", "2xx"), ("a", "2xx"), ("b", "5xx")):
        metrics.requests.labels("chat/completions", "chat", "explicit", worker, status).inc()
    metrics.requests.labels("health", "", "", "", "2xx").inc()  # probes are not inference requests
    metrics.duration.labels("chat/completions", "chat").observe(0.2)
    metrics.tokens.labels("chat", "key_1", "completion").inc(30)
    metrics.cache.labels("hit").inc()
    metrics.cache.labels("miss").inc(3)
    figures = window.overview()
    assert figures["total"]["requests"] == 3 and figures["total"]["errors"] == 1
    assert figures["models"]["chat"]["error_rate"] == round(1 / 3, 4)
    assert figures["workers"] == {"a": figures["workers"]["a"], "b": figures["workers"]["b"]}
    assert figures["workers"]["a"]["requests"] == 2 and figures["workers"]["b"]["errors"] == 1
    assert 100 < figures["models"]["chat"]["p50_ms"] <= 250
    assert figures["cache_hit_rate"] == 0.25
