"""vLLM's KV cache as one pool of blocks, shared by running requests and cached prefixes (used by the
step model, `simulator.scheduler`).

As in vLLM V1's KV-cache manager with automatic prefix caching: `capacity` blocks (num_gpu_blocks)
of `block_tokens` tokens. A running request holds a block for every `block_tokens` tokens of its
prompt and completion. Once a full prompt block is computed it is published under its chained hash
(`simulator.latency.chained_block_hashes`), and a later request whose prompt starts with the same
blocks holds those instead of computing them again. When a request finishes, its published blocks
stay cached but become evictable, least recently freed first; a request frees its tail first, so a
prompt's head outlives its tail, as in vLLM's free-block queue. Its other blocks (the partial last
block, the completion, duplicates) are simply freed. A request is admitted only when its new blocks
fit in what is free or evictable.

With a `KvEventLog` it logs, as vLLM's pool does, the blocks it evicts (`BlockRemoved`); the scheduler,
which knows their tokens, logs the blocks published (`BlockStored`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from simulator.kv_events import KvEventLog


class BlockPool:
    """The blocks of one worker's KV cache: held by running requests, cached and evictable, or free."""

    def __init__(self, capacity: int, block_tokens: int, events: KvEventLog | None = None) -> None:
        self.capacity = capacity
        self.block_tokens = block_tokens
        self.events = events
        """Where evictions are logged; None: nowhere."""
        self._held: dict[bytes, int] = {}
        """Published blocks held by running requests: how many hold each."""
        self._evictable: OrderedDict[bytes, None] = OrderedDict()
        """Published blocks no request holds, least recently freed first."""
        self._anonymous = 0
        """Blocks held by running requests that no other request can reuse (yet)."""

    @property
    def used(self) -> int:
        """Blocks held by running requests."""
        return len(self._held) + self._anonymous

    @property
    def usage(self) -> float:
        """vLLM's kv_cache_usage_perc: the share of blocks held (cached but evictable ones count as free)."""
        return min(self.used / self.capacity, 1.0)

    @property
    def cached_blocks(self) -> int:
        """Blocks a new prompt could reuse: published ones, held or evictable."""
        return len(self._held) + len(self._evictable)

    def cached_prefix(self, hashes: Sequence[bytes]) -> int:
        """How many leading blocks of `hashes` are cached."""
        count = 0
        for block_hash in hashes:
            if block_hash not in self._held and block_hash not in self._evictable:
                break
            count += 1
        return count

    def allocate(self, cached: Sequence[bytes], new_blocks: int, *, force: bool = False) -> bool:
        """Hold the cached blocks `cached` and `new_blocks` fresh ones; False, holding nothing, when they
        do not fit. `force` admits them anyway (a request bigger than the free pool, with nothing running)."""
        revived = sum(1 for block_hash in cached if block_hash not in self._held)
        if not force and self.used + revived + new_blocks > self.capacity:
            return False
        for block_hash in cached:
            self._evictable.pop(block_hash, None)
            self._held[block_hash] = self._held.get(block_hash, 0) + 1
        self._anonymous += new_blocks
        self._evict()
        return True

    def publish(self, block_hash: bytes) -> bool:
        """A running request computed one of its fresh blocks, a full prompt block: make it reusable.
        False when the same block is already held by another request (this one stays a private duplicate)."""
        if block_hash in self._held:
            return False
        self._evictable.pop(block_hash, None)  # an older, freed copy: ours replaces it
        self._anonymous -= 1
        self._held[block_hash] = 1
        return True

    def release(self, held: Sequence[bytes], anonymous: int) -> None:
        """A request ends: its published blocks `held` (in prompt order) become evictable, tail first,
        and its `anonymous` blocks are freed."""
        for block_hash in reversed(held):
            holders = self._held[block_hash] - 1
            if holders:
                self._held[block_hash] = holders
            else:
                del self._held[block_hash]
                self._evictable[block_hash] = None
        self._anonymous -= anonymous
        self._evict()

    def clear(self) -> None:
        """Forget the evictable cached blocks (blocks held by running requests stay)."""
        if self.events is not None:
            self.events.removed(list(self._evictable))
        self._evictable.clear()

    def _evict(self) -> None:
        evicted: list[bytes] = []
        while self._evictable and self.used + len(self._evictable) > self.capacity:
            evicted.append(self._evictable.popitem(last=False)[0])
        if evicted and self.events is not None:
            self.events.removed(evicted)
