"""How long a simulated request takes: the latency model and the KV cache with prefix reuse.

Time to first token = (ttft_overhead_s + uncached prompt tokens * prefill_s_per_token) * slowdown,
and each later token comes itl_s * slowdown after the previous one, where
slowdown = (1 + concurrency_slowdown * (running - 1)) * time_scale. This per-request model charges a
prefill to its own request only; `max_num_batched_tokens` switches a vLLM simulator to the step
model of `simulator.scheduler`, where it also delays every request on the worker.

The KV cache works like vLLM's automatic prefix caching. The serialized prompt is cut into blocks of
`block_tokens` tokens (`block_tokens * 4` characters, see `simulator.text`); only full blocks are cached.
Block hashes are chained (block i's hash covers block i's text and block i-1's hash, block 0's covers
the model name), so a hit on block i implies hits on all before it. A request reuses its longest run
of cached leading blocks, never its whole prompt (vLLM always computes the last prompt token), then
caches all its blocks; past `kv_blocks` blocks the least recently used are evicted.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from simulator.config import SimulatorConfig
from simulator.text import CHARS_PER_TOKEN


def chained_block_hashes(model: str, text: str, block_chars: int) -> list[bytes]:
    """Chained hashes of the full `block_chars`-character blocks of `text` (block 0's covers `model`)."""
    previous = hashlib.blake2b(model.encode(), digest_size=16).digest()
    hashes: list[bytes] = []
    for start in range(0, len(text) - block_chars + 1, block_chars):
        block = text[start : start + block_chars].encode()
        previous = hashlib.blake2b(previous + block, digest_size=16).digest()
        hashes.append(previous)
    return hashes


class PrefixCache:
    """A KV cache of chained block hashes with LRU eviction (one per simulated worker)."""

    def __init__(self, capacity_blocks: int, block_tokens: int) -> None:
        self.capacity_blocks = capacity_blocks
        self.block_tokens = block_tokens
        self._blocks: OrderedDict[bytes, None] = OrderedDict()

    @property
    def block_chars(self) -> int:
        return self.block_tokens * CHARS_PER_TOKEN

    def block_hashes(self, model: str, text: str) -> list[bytes]:
        """Chained hashes of the full blocks of `text`."""
        return chained_block_hashes(model, text, self.block_chars)

    def lookup_and_insert(self, model: str, text: str, prompt_tokens: int) -> int:
        """Cache the prompt's blocks; return how many of its tokens need no prefill (those of the leading
        blocks that were cached already)."""
        hashes = self.block_hashes(model, text)
        reusable = min(len(hashes), max(prompt_tokens - 1, 0) // self.block_tokens)
        hits = 0
        for block_hash in hashes[:reusable]:
            if block_hash not in self._blocks:
                break
            hits += 1
        # Tail first, so a prompt's leading blocks are the most recently used and evicted last: as vLLM
        # frees blocks in reverse order, a cache a little over capacity loses the ends of prompts, not
        # their shared beginnings.
        for block_hash in reversed(hashes):
            self._blocks[block_hash] = None
            self._blocks.move_to_end(block_hash)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        return hits * self.block_tokens

    def clear(self) -> None:
        self._blocks.clear()


class LatencyModel:
    """Turns token counts and current concurrency into delays, from the simulator's settings."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config

    def slowdown(self, running: int) -> float:
        """Factor applied to every delay while `running` requests generate together (and `time_scale`)."""
        return (1.0 + self._config.concurrency_slowdown * max(running - 1, 0)) * self._config.time_scale

    def time_to_first_token(self, uncached_prompt_tokens: int, running: int) -> float:
        base = self._config.ttft_overhead_s + uncached_prompt_tokens * self._config.prefill_s_per_token
        return base * self.slowdown(running)

    def inter_token(self, running: int, slow: bool = False) -> float:
        itl = self._config.slow_itl_s if slow else self._config.itl_s
        return itl * self.slowdown(running)
