"""The approximate prefix index behind prefix affinity: llm-d's chained block hashes of a prompt, and
an LRU per worker of the blocks the gateway sent it (see `prefix_affinity` for how they are used)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import xxhash

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
        self._blocks: OrderedDict[int, int] = OrderedDict()
        """Block hash -> the number of the last request that sent it."""
        self.capacity = capacity
        self.requests = 0
        """Requests recorded so far."""
        self._settled: tuple[int, int, int, int] | None = None

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block: int) -> bool:
        return block in self._blocks

    @property
    def fill(self) -> float:
        """The share of the capacity in use: how much text the worker is believed to cache."""
        return len(self._blocks) / self.capacity

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        self._evict(capacity)

    def add(self, blocks: Sequence[int]) -> None:
        """Record a prompt's blocks. Its leading blocks become the most recent, so its tail is
        evicted first (vLLM frees a request's blocks the same way: the shared prefix lives longest)."""
        self.requests += 1
        for block in reversed(blocks):
            self._blocks[block] = self.requests
            self._blocks.move_to_end(block)
        self._evict(self.capacity)

    def matched(self, blocks: Sequence[int]) -> int:
        """How many leading blocks of `blocks` this worker holds."""
        count = 0
        for block in blocks:
            if block not in self._blocks:
                break
            count += 1
        return count

    def recent_blocks(self, requests: int, at_most: int | None = None) -> int:
        """Distinct blocks sent by the last `requests` requests (the most recent entries), counting
        no further than `at_most`."""
        oldest = self.requests - requests
        count = 0
        for sent in reversed(self._blocks.values()):
            if sent <= oldest or count == at_most:
                break
            count += 1
        return count

    def forget_evicted(self, free_blocks: int, in_flight: int) -> int:
        """Keep at most `free_blocks` plus the blocks of the last `in_flight` requests (still running,
        so still held); drop the least recent beyond. The number of blocks dropped."""
        before = len(self._blocks)
        if (self.requests, before, free_blocks, in_flight) == self._settled:
            return 0  # nothing changed since the last call: nothing more to drop
        if before > free_blocks:
            self._evict(free_blocks + self.recent_blocks(in_flight, at_most=before - free_blocks))
        self._settled = (self.requests, len(self._blocks), free_blocks, in_flight)
        return before - len(self._blocks)

    def _evict(self, keep: int) -> None:
        while len(self._blocks) > keep:
            self._blocks.popitem(last=False)
