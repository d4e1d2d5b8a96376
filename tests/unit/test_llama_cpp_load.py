"""llama-server's load as the pool reads it (`gateway.workers.load_scrape.llama_cpp_load`): its `/metrics`
gauges and its `/slots`, either of which a server may not publish (started without `--metrics`/`--slots`).
The texts are llama-server's own shapes (tools/server/server-task.cpp, server-context.cpp of the pinned
llama.cpp)."""

from __future__ import annotations

from typing import Any

from gateway.workers.load_scrape import llama_cpp_load

METRICS = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 120
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 3
"""


def slot(n_ctx: int, processing: bool, prompt: int = 0, decoded: int = 0) -> dict[str, Any]:
    shown: dict[str, Any] = {"id": 0, "n_ctx": n_ctx, "speculative": False, "is_processing": processing}
    if prompt or decoded:
        shown |= {"n_prompt_tokens": prompt, "next_token": [{"has_next_token": processing, "n_decoded": decoded}]}
    return shown


def test_metrics_give_the_queue_and_slots_the_kv_cache_use() -> None:
    slots = [slot(2048, True, prompt=500, decoded=12), slot(2048, True, prompt=100, decoded=412),
             slot(2048, False, prompt=900, decoded=50), slot(2048, False)]
    load = llama_cpp_load(METRICS, slots)
    assert (load.waiting, load.running) == (3, 2)
    assert load.kv_usage == (500 + 12 + 100 + 412) / (4 * 2048)  # an idle slot's old prompt is not load


def test_without_metrics_the_slots_count_what_runs() -> None:
    load = llama_cpp_load(None, [slot(1024, True, prompt=10), slot(1024, False)])
    assert (load.waiting, load.running) == (None, 1)
    assert load.kv_usage is not None and 0 < load.kv_usage < 0.01


def test_without_slots_the_metrics_alone() -> None:
    load = llama_cpp_load(METRICS, None)
    assert (load.waiting, load.running, load.kv_usage) == (3, 2, None)
