"""What each worker holds in its KV cache, from the events it publishes (`routing.kv_events`).

The index keys blocks on the gateway's own hash of their token ids, chained like the worker's:
`key_0 = xxh64(tokens_0 ‖ ROOT)`, `key_i = xxh64(tokens_i ‖ key_{i-1})`. A worker's own block hashes
cannot be recomputed by the gateway (vLLM seeds them with PYTHONHASHSEED, and salts them with LoRA and
multimodal keys), but a `BlockStored` event carries each block's token ids and its parent's hash, so
the gateway computes its key for every block the worker stores and remembers, per worker, which of
the worker's hashes is which key (to chain the next blocks and to apply evictions). A request's
prompt, tokenized the way the worker tokenizes it, then gets the same keys from `block_keys`, and a
worker's cached prefix is its longest run of held keys from the start, as in vLLM's own lookup.

A block whose parent the index never saw (events lost, or sent before the gateway subscribed) cannot
be keyed and is skipped: the index may miss what a worker holds, but it never claims a block that was
not stored under that prefix. Keys ignore LoRA adapters, so the same tokens under two adapters are
one key, held until both copies are evicted (a block counts its copies).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import xxhash

from routing.kv_events import AllBlocksCleared, BlockHash, BlockRemoved, BlockStored, KvEvent

ROOT_KEY = 0
"""The parent key of a prompt's first block."""


def block_keys(token_ids: Sequence[int], block_size: int, *, parent: int = ROOT_KEY,
               max_blocks: int | None = None) -> list[int]:
    """The chained keys of the full `block_size`-token blocks of `token_ids` (a trailing partial block has
    none: the worker caches only full blocks), at most `max_blocks` of them."""
    count = len(token_ids) // block_size
    if max_blocks is not None:
        count = min(count, max_blocks)
    keys: list[int] = []
    pack = struct.Struct(f"<{block_size}q").pack
    for start in range(0, count * block_size, block_size):
        parent = xxhash.xxh64_intdigest(pack(*token_ids[start:start + block_size]) + parent.to_bytes(8, "little"))
        keys.append(parent)
    return keys


@dataclass(slots=True)
class WorkerBlocks:
    """One worker's cached blocks, as its events told them."""

    key_of: dict[BlockHash, int] = field(default_factory=dict)
    """The worker's hash of each block it holds -> the gateway's key for it."""
    copies: dict[int, int] = field(default_factory=dict)
    """Each key held -> how many of the worker's blocks have it."""
    block_size: int | None = None
    """Tokens per block, from the last `BlockStored`."""
    orphans: int = 0
    """Blocks skipped because their parent was never seen."""

    def store(self, event: BlockStored) -> None:
        if event.parent_block_hash is None:
            parent = ROOT_KEY
        elif event.parent_block_hash in self.key_of:
            parent = self.key_of[event.parent_block_hash]
        else:
            self.orphans += len(event.block_hashes)
            return
        self.block_size = event.block_size
        keys = block_keys(event.token_ids, event.block_size, parent=parent)
        for block_hash, key in zip(event.block_hashes, keys, strict=False):
            if block_hash in self.key_of:
                continue  # stored twice without a removal between: still one block
            self.key_of[block_hash] = key
            self.copies[key] = self.copies.get(key, 0) + 1

    def remove(self, event: BlockRemoved) -> None:
        for block_hash in event.block_hashes:
            key = self.key_of.pop(block_hash, None)
            if key is None:
                continue
            left = self.copies[key] - 1
            if left:
                self.copies[key] = left
            else:
                del self.copies[key]

    def clear(self) -> None:
        self.key_of.clear()
        self.copies.clear()

    def matched(self, keys: Sequence[int]) -> int:
        """How many leading blocks of `keys` this worker holds."""
        count = 0
        for key in keys:
            if key not in self.copies:
                break
            count += 1
        return count


class KvBlockIndex:
    """Every worker's cached blocks, fed by its KV events; read by the precise prefix scorer."""

    def __init__(self) -> None:
        self._workers: dict[str, WorkerBlocks] = {}

    def apply(self, worker: str, events: Iterable[KvEvent]) -> None:
        """Apply one batch of a worker's events, in order."""
        blocks = self._workers.get(worker)
        if blocks is None:
            blocks = self._workers[worker] = WorkerBlocks()
        for event in events:
            if isinstance(event, BlockStored):
                blocks.store(event)
            elif isinstance(event, BlockRemoved):
                blocks.remove(event)
            elif isinstance(event, AllBlocksCleared):
                blocks.clear()

    def reports(self, worker: str) -> bool:
        """The worker has published events (so an empty index means an empty cache, not no news)."""
        return worker in self._workers

    def block_size(self, worker: str) -> int | None:
        blocks = self._workers.get(worker)
        return blocks.block_size if blocks is not None else None

    def matched(self, worker: str, keys: Sequence[int]) -> int:
        """How many leading blocks of `keys` the worker holds (0 for a worker with no events)."""
        blocks = self._workers.get(worker)
        return blocks.matched(keys) if blocks is not None else 0

    def held(self, worker: str) -> int:
        """How many distinct blocks the worker holds (for tests and admin)."""
        blocks = self._workers.get(worker)
        return len(blocks.copies) if blocks is not None else 0

    def forget(self, worker: str) -> None:
        """Drop a worker (it left the fleet, or its event stream restarted and must be learnt anew)."""
        self._workers.pop(worker, None)
