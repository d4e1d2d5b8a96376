"""KV-cache events, published as vLLM publishes them (`--kv-events-config` with the `zmq` publisher).

The step model's block pool (`simulator.kv_pool.BlockPool`) logs what happens to its cached blocks in a
`KvEventLog`; after each step the scheduler hands the log's events to a `KvEventPublisher`, one batch
per step, as vLLM's engine core does. On the wire, like vLLM's `ZmqEventPublisher`: a PUB socket
sending three frames per batch, the topic, the batch's sequence number (8 bytes, big-endian) and the
msgpack of a `KVEventBatch`, `[ts, events]`, each event an array led by its type:

- `["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium]`: a run of a
  prompt's blocks was computed and can be reused; the hashes are the pool's (16-byte BLAKE2b), the token
  ids `simulator.text.token_ids` of the blocks' characters, the medium "GPU".
- `["BlockRemoved", block_hashes, medium]`: cached blocks were evicted (or forgotten by a reset).

The simulator offers no replay socket (vLLM's optional `replay_endpoint`): a subscriber that missed
batches sees a gap in the sequence numbers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import zmq

MEDIUM = "GPU"


class KvEventLog:
    """The block pool's events since the last `take`, in vLLM's wire shape."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._pending: list[list[Any]] = []

    def stored(self, block_hashes: Sequence[bytes], parent: bytes | None, token_ids: Sequence[int]) -> None:
        self._pending.append(["BlockStored", list(block_hashes), parent, list(token_ids), self.block_size, None,
                              MEDIUM])

    def removed(self, block_hashes: Sequence[bytes]) -> None:
        if block_hashes:
            self._pending.append(["BlockRemoved", list(block_hashes), MEDIUM])

    def take(self) -> list[list[Any]]:
        """The events logged since the last call, oldest first."""
        events, self._pending = self._pending, []
        return events


class KvEventPublisher:
    """A ZMQ PUB socket sending batches of KV events (see the module docstring).

    `endpoint` as vLLM's: `tcp://*:5557`, or `tcp://127.0.0.1:*` for any free port (read the bound one
    back from `endpoint` after construction). Sends never block: with no subscriber, or one too slow,
    ZMQ drops batches, as it does for vLLM."""

    def __init__(self, endpoint: str, topic: str = "") -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError:
            self.close()
            raise
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._topic = topic.encode()
        self.sequence = 0
        """The next batch's sequence number."""

    def publish(self, events: list[list[Any]]) -> None:
        """Send one batch; nothing when `events` is empty."""
        if not events:
            return
        payload = msgspec.msgpack.encode([time.time(), events])
        with contextlib.suppress(zmq.Again):
            self._socket.send_multipart([self._topic, self.sequence.to_bytes(8, "big"), payload], flags=zmq.NOBLOCK)
        self.sequence += 1

    def close(self) -> None:
        self._socket.close()
        self._context.term()
