"""Reading a worker's load from what it publishes: vLLM's Prometheus `/metrics`, Ollama's `/api/ps` and
`/api/tags` (fetched by `gateway.workers.control_client`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from gateway.workers.pool import ScrapedLoad

_GAUGES = {"vllm:num_requests_waiting": "waiting", "vllm:num_requests_running": "running"}


def parse_vllm_metrics(text: str) -> ScrapedLoad:
    """Sum the queue gauges over engines; KV usage is their mean (`vllm:gpu_cache_usage_perc`, the old
    name, only when the new one is absent); `num_gpu_blocks` from `vllm:cache_config_info`'s labels."""
    sums: dict[str, float] = {}
    kv: list[float] = []
    old_kv: list[float] = []
    blocks: int | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _GAUGES:
                sums[_GAUGES[sample.name]] = sums.get(_GAUGES[sample.name], 0.0) + sample.value
            elif sample.name == "vllm:kv_cache_usage_perc":
                kv.append(sample.value)
            elif sample.name == "vllm:gpu_cache_usage_perc":
                old_kv.append(sample.value)
            elif sample.name == "vllm:cache_config_info" and "num_gpu_blocks" in sample.labels:
                with contextlib.suppress(ValueError):
                    blocks = int(sample.labels["num_gpu_blocks"])
    usage = kv or old_kv
    waiting, running = sums.get("waiting"), sums.get("running")
    return ScrapedLoad(waiting=None if waiting is None else int(waiting),
                       running=None if running is None else int(running),
                       kv_usage=sum(usage) / len(usage) if usage else None, num_gpu_blocks=blocks)


def ollama_load(loaded: Iterable[str], present: Iterable[str] | None) -> ScrapedLoad:
    """What an Ollama worker has in memory (`ps`) and on disk (`list`), by the names requests use:
    each tagged name, and without `:latest` too (catalogs may name `llama3.2`)."""
    return ScrapedLoad(resident_models=_request_names(loaded),
                       present_models=None if present is None else _request_names(present))


def _request_names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name for tagged in names for name in (tagged, tagged.removesuffix(":latest")))
