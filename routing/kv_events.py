"""vLLM's KV-cache events, decoded: what a worker started with `--kv-events-config` publishes over ZMQ.

Each ZMQ message is three frames: the topic, a sequence number (8 bytes, big-endian) and a msgpack
payload. The payload is a `KVEventBatch`, a msgspec struct encoded as an array: `[ts, events]` (and
`data_parallel_rank` after them when set). Each event is an array too, its first item the tag naming
its type:

- `["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium, ...]`: the
  blocks, in prompt order, became reusable; `token_ids` holds `block_size` tokens per block, and
  `parent_block_hash` is the block before the first one (None at the start of a prompt).
- `["BlockRemoved", block_hashes, medium, ...]`: the blocks were evicted.
- `["AllBlocksCleared"]`: the whole prefix cache was reset.

Block hashes are bytes (sha256, vLLM's default since 0.10) or integers (older releases, or
`--prefix-caching-hash-algo` builtin); they depend on the worker's hash seed, so the gateway only uses
them to link a block to its parent and to find the block an eviction names. `medium` says where a
block lives: None or "GPU" for the worker's own KV cache; "CPU" and others are offload tiers, ignored.

Decoding reads the arrays by position and tolerates trailing fields that newer releases add
(`lora_name`, `extra_keys`, `group_idx`) and trailing defaults that msgspec's `omit_defaults` leaves
out. Pure: bytes in, plain frozen data out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

BlockHash = bytes | int
"""A block's hash as the worker computed it (vLLM's `ExternalBlockHash`)."""

_OWN_CACHE = (None, "GPU")
"""`medium` values that mean the worker's own KV cache (None: releases before offloading existed)."""


class KvEventFormatError(ValueError):
    """A payload that is not a KVEventBatch."""


@dataclass(frozen=True, slots=True)
class BlockStored:
    block_hashes: tuple[BlockHash, ...]
    parent_block_hash: BlockHash | None
    token_ids: tuple[int, ...]
    block_size: int


@dataclass(frozen=True, slots=True)
class BlockRemoved:
    block_hashes: tuple[BlockHash, ...]


@dataclass(frozen=True, slots=True)
class AllBlocksCleared:
    pass


KvEvent = BlockStored | BlockRemoved | AllBlocksCleared


@dataclass(frozen=True, slots=True)
class KvEventBatch:
    ts: float
    events: tuple[KvEvent, ...]


def decode_batch(payload: bytes) -> KvEventBatch:
    """A KVEventBatch from its msgpack payload; events about offload tiers and unknown event types are
    left out. Raises KvEventFormatError when the payload is not a batch."""
    try:
        raw = msgspec.msgpack.decode(payload)
    except msgspec.DecodeError as exc:
        raise KvEventFormatError(f"not msgpack: {exc}") from None
    if not isinstance(raw, list) or len(raw) < 2 or not isinstance(raw[1], list):
        raise KvEventFormatError("a KVEventBatch is an array [ts, events, ...]")
    ts = raw[0] if isinstance(raw[0], int | float) else 0.0
    events = tuple(event for event in (_event(item) for item in raw[1]) if event is not None)
    return KvEventBatch(float(ts), events)


def sequence_number(frame: bytes) -> int:
    """The batch's sequence number, from its 8-byte big-endian frame."""
    if len(frame) != 8:
        raise KvEventFormatError(f"a sequence number is 8 bytes, got {len(frame)}")
    return int.from_bytes(frame, "big", signed=True)


def _event(item: Any) -> KvEvent | None:
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise KvEventFormatError(f"an event is an array starting with its type, got {item!r:.80}")
    tag, fields = item[0], item[1:]
    if tag == "BlockStored":
        return _stored(fields)
    if tag == "BlockRemoved":
        if len(fields) < 1:
            raise KvEventFormatError("BlockRemoved without block_hashes")
        medium = fields[1] if len(fields) > 1 else None
        return BlockRemoved(_hashes(fields[0])) if medium in _OWN_CACHE else None
    if tag == "AllBlocksCleared":
        return AllBlocksCleared()
    return None  # an event type this gateway does not know: not about what the worker caches


def _stored(fields: list[Any]) -> BlockStored | None:
    if len(fields) < 4:
        raise KvEventFormatError("BlockStored needs block_hashes, parent_block_hash, token_ids and block_size")
    hashes, parent, tokens, block_size = fields[:4]
    medium = fields[5] if len(fields) > 5 else None
    if medium not in _OWN_CACHE:
        return None
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        raise KvEventFormatError("BlockStored.token_ids must be integers")
    if not isinstance(block_size, int) or block_size < 1:
        raise KvEventFormatError("BlockStored.block_size must be a positive integer")
    return BlockStored(_hashes(hashes), _hash_or_none(parent), tuple(tokens), block_size)


def _hashes(value: Any) -> tuple[BlockHash, ...]:
    if not isinstance(value, list) or not all(isinstance(h, bytes | int) for h in value):
        raise KvEventFormatError("block_hashes must be a list of bytes or integers")
    return tuple(value)


def _hash_or_none(value: Any) -> BlockHash | None:
    if value is None or isinstance(value, bytes | int):
        return value
    raise KvEventFormatError("parent_block_hash must be bytes, an integer or nil")
