"""Why requests missed the prefix cache: a replay of one run's per-worker request order (used by
`benchmarks.routing_bench`; run that).

The requests each worker received, in the order they were sent, go through fresh copies of the
simulator's KV cache (`simulator.latency.PrefixCache`), which reproduces the measured hit rate. Each
request that reused no block is classed as a first visit (the first request of its group on that
worker: a new or a spread placement) or an eviction (the group had been there and was pushed out).

The same order also goes through a variant that evicts a prompt's tail blocks before its head, as
vLLM does (it frees a finished request's blocks in reverse order). The simulator inserts them head
first, so its least recently used block of a prompt is block 0, and since a hit must start at block
0, a cache that overflows by a few blocks loses whole prefixes. The difference between the two hit
rates is what that eviction order costs in this run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.routing_client import Outcome
from benchmarks.routing_workload import ChatRequest, FleetSettings
from simulator.latency import PrefixCache, PrefixLookup
from simulator.text import count_tokens, serialize_messages

MODEL = "sim-model"


class TailFirstCache(PrefixCache):
    """The simulator's KV cache, but a prompt's leading blocks are the last of it to be evicted."""

    def lookup_and_insert(self, model: str, text: str, prompt_tokens: int) -> PrefixLookup:
        hashes = self.block_hashes(model, text)
        reusable = min(len(hashes), max(prompt_tokens - 1, 0) // self.block_tokens)
        hits = 0
        for block_hash in hashes[:reusable]:
            if block_hash not in self._blocks:
                break
            hits += 1
        for block_hash in reversed(hashes):
            self._blocks[block_hash] = None
            self._blocks.move_to_end(block_hash)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        return PrefixLookup(blocks=len(hashes), hit_blocks=hits, cached_tokens=hits * self.block_tokens)


def replay(outcomes: Sequence[Outcome], requests: Sequence[ChatRequest], fleet: FleetSettings) -> dict[str, Any]:
    """Hit rates (tokens) with the simulator's and with tail-first eviction, and the misses' causes."""
    ordered = sorted((o for o in outcomes if o.error is None), key=lambda o: o.sent_at)
    prompts = {o.index: serialize_messages(requests[o.index].messages) for o in ordered}
    result: dict[str, Any] = {}
    for label, cache_type in (("simulator", PrefixCache), ("tail_first", TailFirstCache)):
        caches: dict[str, PrefixCache] = {}
        visited: set[tuple[str, int]] = set()
        queried = hit = first_visits = evicted = 0
        for outcome in ordered:
            cache = caches.setdefault(outcome.worker, cache_type(fleet.kv_blocks, fleet.block_tokens))
            tokens = count_tokens(prompts[outcome.index])
            lookup = cache.lookup_and_insert(MODEL, prompts[outcome.index], tokens)
            queried += tokens
            hit += lookup.cached_tokens
            if lookup.hit_blocks == 0:
                if (outcome.worker, outcome.group) in visited:
                    evicted += 1
                else:
                    first_visits += 1
            visited.add((outcome.worker, outcome.group))
        result[f"hit_rate_{label}"] = round(hit / queried, 4) if queried else 0.0
        if label == "simulator":
            result.update(missed_requests=first_visits + evicted, missed_first_visit=first_visits,
                          missed_evicted=evicted, requests=len(ordered),
                          groups_per_worker=round(len(visited) / max(len(caches), 1), 2))
    return result
