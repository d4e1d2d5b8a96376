"""Prefix affinity: send a request to the worker most likely to hold its prompt's prefix in its KV
cache, unless that would pile load onto one worker.

The index is llm-d's approximate prefix index: the prompt (the whole conversation, serialized in
order) is cut into blocks of 64 characters (16 tokens * about 4 characters) and the block hashes
are chained, `h0 = xxh64(model)`, `h_i = xxh64(block_i ‖ h_{i-1})`, so a match on block i implies a
match on every block before it. Each worker has an LRU of the block hashes the gateway sent it
(31,250 blocks by default, or the worker's `num_gpu_blocks` through `capacity`). A worker's score
is the number of leading blocks found in its LRU over the number of blocks in the prompt.

The decision is SGLang's cache-aware rule, on outstanding requests (`in_flight + waiting`):
  1. load imbalanced (max - min > `balance_abs` and max > `balance_rel` * min): the least loaded;
  2. else, if the best score exceeds `match_threshold`: the best-matching worker (ties: the less
     loaded);
  3. else: the least loaded (SGLang picks the worker with the least cached text; we pick the least
     outstanding, which spreads new prefixes by load and needs no size accounting).
Ties on load go to the higher weight, then take turns (see `LeastOutstanding`). The chosen worker's
LRU then records the request's blocks.

Hashing the whole conversation, not its first message, matters: keyed on the first message alone,
every conversation sharing a system prompt would pile onto one worker (a known SGLang pitfall).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import xxhash

from routing.policies.balancing import LeastOutstanding
from routing.snapshot import RequestKey, WorkerLoad, usable

BLOCK_CHARS = 64
DEFAULT_CAPACITY_BLOCKS = 31_250
DEFAULT_MAX_BLOCKS = 256


def block_hashes(model: str, prompt: str, *, block_chars: int = BLOCK_CHARS,
                 max_blocks: int = DEFAULT_MAX_BLOCKS) -> list[int]:
    """The chained hashes of the prompt's full blocks (a trailing partial block is not hashed, as in
    llm-d: it will differ once the conversation grows), at most `max_blocks` of them."""
    hashes: list[int] = []
    previous = xxhash.xxh64_intdigest(model.encode("utf-8"))
    end = min(len(prompt) // block_chars, max_blocks) * block_chars
    for start in range(0, end, block_chars):
        block = prompt[start:start + block_chars].encode("utf-8")
        previous = xxhash.xxh64_intdigest(block + previous.to_bytes(8, "little"))
        hashes.append(previous)
    return hashes


class BlockLRU:
    """The block hashes one worker is believed to hold, least recently sent first."""

    def __init__(self, capacity: int) -> None:
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block: int) -> bool:
        return block in self._blocks

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        self._evict()

    def add(self, blocks: Sequence[int]) -> None:
        """Record a prompt's blocks. Its leading blocks become the most recent, so its tail is
        evicted first (vLLM frees a request's blocks the same way: the shared prefix lives longest)."""
        for block in reversed(blocks):
            self._blocks[block] = None
            self._blocks.move_to_end(block)
        self._evict()

    def matched(self, blocks: Sequence[int]) -> int:
        """How many leading blocks of `blocks` this worker holds."""
        count = 0
        for block in blocks:
            if block not in self._blocks:
                break
            count += 1
        return count

    def _evict(self) -> None:
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)


class PrefixAffinity:
    """Cache-aware routing from an approximate per-worker prefix index (see the module docstring).

    `balance_abs`: the absolute imbalance (max - min outstanding) that overrides affinity. SGLang's
    64 suits vLLM workers batching hundreds of sequences; with small fleets that each run a handful
    of requests at a time (the simulator, Ollama, llama.cpp), use about their concurrency: 2-8.
    `balance_rel`: the relative imbalance (max > balance_rel * min) that must hold as well.
    `match_threshold`: the share of the prompt's blocks a worker must hold to attract it.
    `capacity_blocks`: the default LRU size per worker; `capacity()` sets one worker's.
    `max_blocks`: blocks hashed per prompt (llm-d's 256 * 64 = 16,384 characters): bounds the work.
    """

    def __init__(self, *, block_chars: int = BLOCK_CHARS, capacity_blocks: int = DEFAULT_CAPACITY_BLOCKS,
                 balance_abs: int = 64, balance_rel: float = 1.5, match_threshold: float = 0.3,
                 max_blocks: int = DEFAULT_MAX_BLOCKS) -> None:
        if block_chars < 1 or capacity_blocks < 1 or max_blocks < 1:
            raise ValueError("block_chars, capacity_blocks and max_blocks must be at least 1")
        if balance_abs < 0 or balance_rel < 1 or not 0 <= match_threshold <= 1:
            raise ValueError("need balance_abs >= 0, balance_rel >= 1 and 0 <= match_threshold <= 1")
        self.block_chars = block_chars
        self.capacity_blocks = capacity_blocks
        self.balance_abs = balance_abs
        self.balance_rel = balance_rel
        self.match_threshold = match_threshold
        self.max_blocks = max_blocks
        self._capacities: dict[str, int] = {}
        self._index: dict[str, BlockLRU] = {}
        self._least = LeastOutstanding()

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

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        live = usable(candidates)
        if not live:
            return None
        blocks = self._hashes(request)
        chosen = self._decide(request, blocks, live, now)
        if chosen is not None and blocks:
            self._lru(chosen.name).add(blocks)
        return chosen

    def _decide(self, request: RequestKey, blocks: list[int], live: list[WorkerLoad],
                now: float) -> WorkerLoad | None:
        loads = [c.outstanding for c in live]
        most, least = max(loads), min(loads)
        if most - least > self.balance_abs and most > self.balance_rel * least:
            return self._least.choose(request, live, now)
        if blocks:
            scores = self._scores(blocks, live)
            best = max(scores.values())
            if best > self.match_threshold:
                return self._least.choose(request, [c for c in live if scores[c.name] == best], now)
        return self._least.choose(request, live, now)

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
