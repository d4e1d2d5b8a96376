"""Prefix affinity: send a request to the worker most likely to hold its prompt's prefix in its KV
cache, unless that would pile load onto one worker.

The index is llm-d's approximate prefix index: the prompt (the whole conversation, serialized in
order) is cut into blocks of 64 characters (16 tokens * about 4 characters) and the block hashes
are chained, `h0 = xxh64(model)`, `h_i = xxh64(block_i ‖ h_{i-1})`, so a match on block i implies a
match on every block before it. Each worker has an LRU of the block hashes the gateway sent it
(31,250 blocks by default, or the worker's `num_gpu_blocks` through `capacity`). A worker's score
is the number of leading blocks found in its LRU over the number of blocks in the prompt.

The decision is SGLang's cache-aware rule, on the estimated load (`WorkerLoad.load`), with a
bounded-load guard:
  1. load imbalanced (max - min > `balance_abs` and max > `balance_rel` * min): the least loaded;
  2. the guard (`load_factor`, off by default): a worker whose outstanding requests, this one
     included, would exceed `load_factor` * the mean is left out of steps 3 and 4 (consistent
     hashing with bounded loads), so a hot prefix spills to the next workers instead of queueing;
  3. if the best score exceeds `match_threshold`: the best-matching worker (ties: the less loaded);
  4. else (a prefix no worker holds): the worker with the least cached text, i.e. the emptiest LRU
     for its capacity (SGLang's smallest tree), ties to the less loaded.
Ties on load go to the higher weight, then take turns (see `LeastOutstanding`, here by load alone). Whatever the step,
the chosen worker's LRU then records the request's blocks: a request sent elsewhere because of load
makes that worker a second owner of the prefix.

The index also forgets what a worker must have evicted. vLLM's KV cache holds the blocks of running
requests and, in what is left, cached prefixes; its scraped `kv_cache_usage_perc` is the share held
by running requests. So a worker caches at most its free blocks plus the blocks of its in-flight
requests (the most recently recorded ones). When its LRU holds more, it drops its least recent
blocks: a long generation that filled the cache pushed them out of the worker, and of the index.

Hashing the whole conversation, not its first message, matters: keyed on the first message alone,
every conversation sharing a system prompt would pile onto one worker (a known SGLang pitfall).
"""

from __future__ import annotations

from collections.abc import Sequence

from routing.policies.explanation import Explanation, figures
from routing.policies.least_load import LeastOutstanding
from routing.policies.prefix_index import (
    BLOCK_CHARS,
    DEFAULT_CAPACITY_BLOCKS,
    DEFAULT_MAX_BLOCKS,
    BlockLRU,
    block_hashes,
)
from routing.snapshot import RequestKey, WorkerLoad, usable

_SCORE_MEANS = "the share of the prompt's leading blocks believed cached: the highest wins, within the load rules"
_IMBALANCED = "load imbalanced (max - min > balance_abs and max > balance_rel x min): the least loaded"
_CACHED = "the longest cached prefix (share over match_threshold); ties: the least loaded"
_CACHED_GUARDED = ("the longest cached prefix among the workers within load_factor x the mean load (share over "
                   "match_threshold); ties: the least loaded")
_NEW_PREFIX = ("no worker holds more than match_threshold of the prompt: the worker caching the least text, "
               "then the least loaded")


class PrefixAffinity:
    """Cache-aware routing from an approximate per-worker prefix index (see the module docstring).

    `balance_abs`: the absolute imbalance (max - min outstanding) that overrides affinity. SGLang's
    64 suits vLLM workers batching hundreds of sequences; with small fleets that each run a handful
    of requests at a time (the simulator, Ollama, llama.cpp), use about their concurrency: 2-8.
    `balance_rel`: the relative imbalance (max > balance_rel * min) that must hold as well.
    `load_factor`: the bounded-load guard, None (off) or > 1: affinity never takes a worker past
    `load_factor` times the mean outstanding requests (counting this one); 1.25-2 suits small fleets.
    `match_threshold`: the share of the prompt's blocks a worker must hold to attract it.
    `capacity_blocks`: the default LRU size per worker; `capacity()` sets one worker's.
    `max_blocks`: blocks hashed per prompt (llm-d's 256 * 64 = 16,384 characters): bounds the work.
    """

    def __init__(self, *, block_chars: int = BLOCK_CHARS, capacity_blocks: int = DEFAULT_CAPACITY_BLOCKS,
                 balance_abs: int = 64, balance_rel: float = 1.5, match_threshold: float = 0.3,
                 max_blocks: int = DEFAULT_MAX_BLOCKS, load_factor: float | None = None) -> None:
        if block_chars < 1 or capacity_blocks < 1 or max_blocks < 1:
            raise ValueError("block_chars, capacity_blocks and max_blocks must be at least 1")
        if balance_abs < 0 or balance_rel < 1 or not 0 <= match_threshold <= 1:
            raise ValueError("need balance_abs >= 0, balance_rel >= 1 and 0 <= match_threshold <= 1")
        if load_factor is not None and load_factor <= 1:
            raise ValueError("load_factor must be more than 1 (or unset)")
        self.block_chars = block_chars
        self.capacity_blocks = capacity_blocks
        self.balance_abs = balance_abs
        self.balance_rel = balance_rel
        self.match_threshold = match_threshold
        self.max_blocks = max_blocks
        self.load_factor = load_factor
        self._capacities: dict[str, int] = {}
        self._index: dict[str, BlockLRU] = {}
        self._least = LeastOutstanding(queue_first=False)  # its balance rules are all in load
        self._step = _NEW_PREFIX
        """Which step of the rule decided last (for `explain`)."""

    def capacity(self, worker_name: str, blocks: int) -> None:
        """Size a worker's LRU, e.g. from vLLM's `num_gpu_blocks` (one vLLM block of 16 tokens is
        about one of our 64-character blocks)."""
        if blocks < 1:
            raise ValueError("a worker's capacity must be at least 1 block")
        self._capacities[worker_name] = blocks
        if worker_name in self._index:
            self._index[worker_name].resize(blocks)

    def forget(self, name: str) -> None:
        """Drop a worker's index and capacity (it left the fleet)."""
        self._index.pop(name, None)
        self._capacities.pop(name, None)

    def scores(self, request: RequestKey, candidates: Sequence[WorkerLoad]) -> dict[str, float]:
        """Each candidate's share of the prompt's leading blocks it holds, 0..1 (for tests, admin)."""
        return self._scores(self._hashes(request), candidates)

    def cached_blocks(self, name: str) -> int:
        """How many blocks a worker is believed to hold (for tests, admin)."""
        lru = self._index.get(name)
        return len(lru) if lru is not None else 0

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        live = usable(candidates)
        if not live:
            return None
        self._forget_evicted(live)
        blocks = self._hashes(request)
        chosen = self._decide(request, blocks, live, now, commit=True)
        if blocks:
            self._lru(chosen.name).add(blocks)
        return chosen

    def explain(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> Explanation:
        live = usable(candidates)
        cached = self._scores(self._hashes(request), candidates)
        table = figures(candidates, now, self._least.fade_s, scores=cached, cached=cached)
        if not live:
            return Explanation(None, "no candidate can take traffic", _SCORE_MEANS, table)
        chosen = self._decide(request, self._hashes(request), live, now, commit=False)
        return Explanation(chosen.name, self._step, _SCORE_MEANS, table)

    def _decide(self, request: RequestKey, blocks: list[int], live: list[WorkerLoad], now: float, *,
                commit: bool) -> WorkerLoad:
        """SGLang's rule (see the module docstring); `self._step` says which step decided."""
        fade = self._least.fade_s
        loads = [c.load(now, fade) for c in live]
        most, least = max(loads), min(loads)
        if most - least > self.balance_abs and most > self.balance_rel * least:
            self._step = _IMBALANCED
            return self._least.pick(request.model, live, now, commit=commit)
        allowed = self._within_bound(live, now)
        if blocks:
            scores = self._scores(blocks, allowed)
            best = max(scores.values())
            if best > self.match_threshold:
                self._step = _CACHED if len(allowed) == len(live) else _CACHED_GUARDED
                return self._least.pick(request.model, [c for c in allowed if scores[c.name] == best], now,
                                        commit=commit)
        self._step = _NEW_PREFIX
        return self._emptiest(request, allowed, now, commit)

    def _within_bound(self, live: list[WorkerLoad], now: float) -> list[WorkerLoad]:
        """The candidates the guard lets affinity pick: taking this request, none would hold more than
        `load_factor` * the mean load (all of them, when every one would)."""
        if self.load_factor is None:
            return live
        fade = self._least.fade_s
        bound = self.load_factor * (sum(c.load(now, fade) for c in live) + 1) / len(live)
        return [c for c in live if c.load(now, fade) + 1 <= bound] or live

    def _emptiest(self, request: RequestKey, live: list[WorkerLoad], now: float, commit: bool) -> WorkerLoad:
        """A new prefix: the worker believed to cache the least text (SGLang's smallest tree)."""
        fills = {c.name: self._index[c.name].fill if c.name in self._index else 0.0 for c in live}
        lowest = min(fills.values())
        return self._least.pick(request.model, [c for c in live if fills[c.name] == lowest], now, commit=commit)

    def _forget_evicted(self, live: list[WorkerLoad]) -> None:
        """Drop from each worker's LRU what its scraped KV usage says it can no longer cache."""
        for candidate in live:
            lru = self._index.get(candidate.name)
            capacity = self._capacities.get(candidate.name)
            if lru is None or capacity is None or candidate.kv_usage is None:
                continue
            free = round(capacity * (1.0 - min(max(candidate.kv_usage, 0.0), 1.0)))
            lru.forget_evicted(free, candidate.in_flight)

    def _hashes(self, request: RequestKey) -> list[int]:
        return block_hashes(request.model, request.prompt, block_chars=self.block_chars, max_blocks=self.max_blocks)

    def _scores(self, blocks: list[int], candidates: Sequence[WorkerLoad]) -> dict[str, float]:
        if not blocks:
            return {c.name: 0.0 for c in candidates}
        return {c.name: self._index[c.name].matched(blocks) / len(blocks) if c.name in self._index else 0.0
                for c in candidates}

    def _lru(self, name: str) -> BlockLRU:
        lru = self._index.get(name)
        if lru is None:
            lru = self._index[name] = BlockLRU(self._capacities.get(name, self.capacity_blocks))
        return lru
