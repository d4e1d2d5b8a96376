"""The workers' KV-cache events, subscribed to: one ZMQ SUB socket per worker whose catalog entry has
`kv_events`, feeding the worker pool's `KvBlockIndex` (read by `prefix_affinity_precise`).

Never on the request path: each subscription is a background task that decodes batches
(`routing.kv_events`) and applies them to the index as they come. The set of subscriptions follows the
catalog (reloads, runtime worker changes) and DNS discovery: it is reconciled on every catalog swap and
every health interval. A worker whose subscription ends, or whose sequence numbers start again (it
restarted, so its cache is empty), is forgotten by the index and learnt anew from its next events.
Lost batches (a gap in the sequence numbers) are counted and logged: the index may then miss blocks,
never invent them (`routing.kv_index`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog
import zmq
import zmq.asyncio

from gateway.workers.active_catalog import CatalogHolder
from routing.catalog import WorkerSpec
from routing.kv_events import KvEventFormatError, decode_batch, sequence_number

_log = structlog.get_logger("gateway.workers.kv_feeds")


@dataclass(frozen=True, slots=True)
class FeedAddress:
    """Where one worker's events come from."""

    endpoint: str
    topic: str


def feed_address(spec: WorkerSpec) -> FeedAddress | None:
    """The worker's event endpoint, its `*` host replaced by the worker's own; None without `kv_events`."""
    if spec.kv_events is None:
        return None
    endpoint = spec.kv_events.endpoint
    scheme, _, rest = endpoint.partition("://")
    if scheme == "tcp" and rest.startswith("*:"):
        host = urlsplit(spec.url).hostname or "127.0.0.1"
        endpoint = f"tcp://{f'[{host}]' if ':' in host else host}:{rest[2:]}"
    return FeedAddress(endpoint, spec.kv_events.topic)


class KvEventFeeds:
    """Every worker's event subscription (see the module docstring)."""

    def __init__(self, runtimes: CatalogHolder) -> None:
        self._runtimes = runtimes
        self._context: zmq.asyncio.Context | None = None
        self._feeds: dict[str, tuple[FeedAddress, asyncio.Task[None]]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.gaps = 0
        """Batches lost, over every worker (a sequence number skipped)."""

    async def start(self) -> None:
        self._context = zmq.asyncio.Context()
        self._runtimes.on_swap(lambda _runtime: self._wake.set())
        self.reconcile()
        self._supervisor = asyncio.create_task(self._supervise(), name="kv-event-feeds")

    async def stop(self) -> None:
        tasks = [task for _, task in self._feeds.values()] + ([self._supervisor] if self._supervisor else [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._feeds.clear()
        if self._context is not None:
            self._context.term()
            self._context = None

    def subscribed(self) -> dict[str, str]:
        """Each subscribed worker's endpoint (for tests and status)."""
        return {name: address.endpoint for name, (address, _) in self._feeds.items()}

    async def _supervise(self) -> None:
        while True:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._runtimes.current.catalog.health.interval)
            self.reconcile()

    def reconcile(self) -> None:
        """Subscribe to the workers that publish events and are not subscribed yet; end the others."""
        wanted = {name: address for name, state in self._runtimes.current.pool.workers.items()
                  if (address := feed_address(state.spec)) is not None}
        for name, (address, task) in list(self._feeds.items()):
            if wanted.get(name) != address:
                task.cancel()
                del self._feeds[name]
                self._runtimes.current.pool.kv_index.forget(name)
        for name, address in wanted.items():
            if name not in self._feeds:
                task = asyncio.create_task(self._follow(name, address), name=f"kv-events-{name}")
                self._feeds[name] = (address, task)

    async def _follow(self, worker: str, address: FeedAddress) -> None:
        assert self._context is not None
        socket = self._context.socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(address.endpoint)
        socket.setsockopt(zmq.SUBSCRIBE, address.topic.encode())
        _log.info("kv_events_subscribed", worker=worker, endpoint=address.endpoint)
        last: int | None = None
        try:
            while True:
                frames = await socket.recv_multipart()
                last = self._receive(worker, frames, last)
        finally:
            socket.close()

    def _receive(self, worker: str, frames: list[bytes], last: int | None) -> int | None:
        """Apply one message; the sequence number it carried (or `last`, for a message that is not a batch)."""
        try:
            if len(frames) != 3:
                raise KvEventFormatError(f"expected 3 frames (topic, sequence, payload), got {len(frames)}")
            sequence = sequence_number(frames[1])
            batch = decode_batch(frames[2])
        except KvEventFormatError as exc:
            _log.warning("kv_events_unreadable", worker=worker, error=str(exc))
            return last
        index = self._runtimes.current.pool.kv_index
        if last is not None and sequence <= last:
            index.forget(worker)  # numbering started again: the worker restarted with an empty cache
        elif last is not None and sequence > last + 1:
            self.gaps += sequence - last - 1
            _log.warning("kv_events_lost", worker=worker, batches=sequence - last - 1)
        index.apply(worker, batch.events)
        return sequence
