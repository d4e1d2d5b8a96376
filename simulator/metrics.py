"""vLLM's Prometheus metrics for a simulated worker, in a registry of its own.

Names and labels follow vLLM (V1 engine): gauges `vllm:num_requests_running`,
`vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (0-1), counters
`vllm:prefix_cache_queries_total` and `vllm:prefix_cache_hits_total` (tokens), the info gauge
`vllm:cache_config_info` (labels `block_size`, `num_gpu_blocks`), and the latency histograms
`vllm:time_to_first_token_seconds`, `vllm:inter_token_latency_seconds`,
`vllm:e2e_request_latency_seconds`, `vllm:request_queue_time_seconds` (arrival to prefill start).
Labels: `model_name` (the first served model name) and `engine="0"`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from simulator.engine import Engine

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
"""Content-Type of the /metrics answer."""

_LABELS = ("model_name", "engine")
_ENGINE = "0"

_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0)
_ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0)
_E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0)


class VllmMetrics:
    """The metrics one simulated vLLM worker exposes; also the engine's `GenerationObserver`."""

    def __init__(self, model_name: str, block_size: int, num_gpu_blocks: int) -> None:
        self.registry = CollectorRegistry()
        labels = {"model_name": model_name, "engine": _ENGINE}
        registry = self.registry
        self._running = Gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", _LABELS, registry=registry
        ).labels(**labels)
        self._waiting = Gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.", _LABELS, registry=registry
        ).labels(**labels)
        self._kv_usage = Gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", _LABELS, registry=registry
        ).labels(**labels)
        self._prefix_queries = Counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            _LABELS,
            registry=registry,
        ).labels(**labels)
        self._prefix_hits = Counter(
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            _LABELS,
            registry=registry,
        ).labels(**labels)
        Gauge(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            ("block_size", "num_gpu_blocks", "enable_prefix_caching", "engine"),
            registry=registry,
        ).labels(
            block_size=str(block_size), num_gpu_blocks=str(num_gpu_blocks), enable_prefix_caching="True", engine=_ENGINE
        ).set(1)
        self._ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            _LABELS,
            buckets=_TTFT_BUCKETS,
            registry=registry,
        ).labels(**labels)
        self._itl = Histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            _LABELS,
            buckets=_ITL_BUCKETS,
            registry=registry,
        ).labels(**labels)
        self._queue_time = Histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            _LABELS,
            buckets=_E2E_BUCKETS,
            registry=registry,
        ).labels(**labels)
        self._e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            _LABELS,
            buckets=_E2E_BUCKETS,
            registry=registry,
        ).labels(**labels)

    def on_prefix_lookup(self, queried_tokens: int, hit_tokens: int) -> None:
        self._prefix_queries.inc(queried_tokens)
        self._prefix_hits.inc(hit_tokens)

    def on_scheduled(self, queue_seconds: float) -> None:
        self._queue_time.observe(queue_seconds)

    def on_first_token(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def on_inter_token(self, seconds: float) -> None:
        self._itl.observe(seconds)

    def on_finished(self, e2e_seconds: float) -> None:
        self._e2e.observe(e2e_seconds)

    def render(self, engine: Engine) -> bytes:
        """The Prometheus text exposition, with the gauges read from `engine` now."""
        self._running.set(engine.running)
        self._waiting.set(engine.waiting)
        self._kv_usage.set(engine.kv_cache_usage)
        return generate_latest(self.registry)
