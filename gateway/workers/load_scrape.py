"""Reading a worker's load from what it publishes: vLLM's Prometheus `/metrics`, llama-server's `/metrics`
and `/slots`, Ollama's `/api/ps` and `/api/tags` (fetched by `gateway.workers.control_client`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

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


_LLAMA_CPP_GAUGES = {"llamacpp:requests_deferred": "waiting", "llamacpp:requests_processing": "running"}


def llama_cpp_load(metrics: str | None, slots: Iterable[Mapping[str, Any]] | None) -> ScrapedLoad:
    """llama-server's load: requests waiting for a slot (`requests_deferred`) and generating
    (`requests_processing`) from `/metrics`; KV-cache use from `/slots` as the tokens the busy slots hold
    (prompt and generated so far) over every slot's context. Either source may be missing (a server
    started without `--metrics` or `--slots`): running is then counted from the slots."""
    counts: dict[str, int] = {}
    if metrics is not None:
        for family in text_string_to_metric_families(metrics):
            for sample in family.samples:
                if sample.name in _LLAMA_CPP_GAUGES:
                    counts[_LLAMA_CPP_GAUGES[sample.name]] = int(sample.value)
    kv_usage = None
    if slots is not None:
        slots = list(slots)
        busy = [slot for slot in slots if slot.get("is_processing")]
        counts.setdefault("running", len(busy))
        capacity = sum(_int(slot.get("n_ctx")) for slot in slots)
        held = sum(_int(slot.get("n_prompt_tokens")) + _decoded(slot) for slot in busy)
        kv_usage = min(held / capacity, 1.0) if capacity else None
    return ScrapedLoad(waiting=counts.get("waiting"), running=counts.get("running"), kv_usage=kv_usage)


def _decoded(slot: Mapping[str, Any]) -> int:
    progress = slot.get("next_token")
    first = progress[0] if isinstance(progress, list) and progress else None
    return _int(first.get("n_decoded")) if isinstance(first, dict) else 0


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def ollama_load(loaded: Iterable[str], present: Iterable[str] | None) -> ScrapedLoad:
    """What an Ollama worker has in memory (`ps`) and on disk (`list`), by the names requests use:
    each tagged name, and without `:latest` too (catalogs may name `llama3.2`)."""
    return ScrapedLoad(resident_models=_request_names(loaded),
                       present_models=None if present is None else _request_names(present))


def _request_names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name for tagged in names for name in (tagged, tagged.removesuffix(":latest")))
