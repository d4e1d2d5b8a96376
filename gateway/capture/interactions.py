"""Interaction capture: request/response pairs of opted-in traffic, for fine-tuning datasets.

Who opted in is decided in `gateway.capture.config`; the records are written in the background by
`gateway.capture.record_queue`. This module takes what the client saw:

`wrap` costs nothing for traffic that did not opt in (the reply is returned as it is). For a
non-streaming answer it queues the body; for a stream it passes every event through unchanged,
keeping the raw events, and queues them once the stream has ended with `[DONE]` (an error event
before `[DONE]` is recorded as the interaction's `error`; a stream the client left is not recorded).

Feedback is accepted for an interaction of the caller's own tenant: the ids captured recently are
kept in a bounded in-memory index (`index_limit`, least recently captured first out); an id not
there (older, or captured by another process sharing the directory) is looked for in the files,
one scan at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

from gateway.auth.authenticator import Caller
from gateway.capture.config import CaptureConfig, CatalogFlags, key_opt_in
from gateway.capture.record_queue import PendingRecord, RecordQueue
from gateway.capture.store import find_interaction
from gateway.observability.request_record import RequestRecord
from gateway.upstream.sse_events import ends_with_done
from routing.catalog import Catalog

RECORD_VERSION = 1


class ReplyLike(Protocol):
    """What `wrap` needs of a `Reply` (`gateway.inference.forwarder`): a whole body or a stream."""

    body: bytes
    stream: AsyncIterator[bytes] | None


R = TypeVar("R", bound=ReplyLike)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class InteractionCapture:
    def __init__(self, config: CaptureConfig | None = None) -> None:
        self.config = config or CaptureConfig()
        self._records = RecordQueue(self.config)
        self._index: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._scan = asyncio.Lock()
        self._flags: CatalogFlags | None = None

    @property
    def directory(self) -> str:
        return self.config.directory

    @property
    def captured(self) -> int:
        """Interactions queued for writing."""
        return self._records.captured

    @property
    def dropped(self) -> int:
        """Interactions dropped because the queue was full (or the capture closed)."""
        return self._records.dropped

    @property
    def failed(self) -> int:
        """Records that could not be written (disk full, unwritable directory, ...)."""
        return self._records.failed

    async def start(self) -> None:
        await self._records.start()

    async def close(self) -> None:
        """Write everything queued, then close the current file. Later captures are dropped."""
        await self._records.close()

    async def flush(self) -> None:
        """Wait until everything queued so far is written (needs `start`)."""
        await self._records.flush()

    @staticmethod
    def opted_in(caller: Caller, route_opt_in: bool) -> bool:
        """Capture this request? The key's `metadata.capture` (true or false) if it has one, else the
        route's (or model's) opt-in."""
        own = key_opt_in(caller)
        return route_opt_in if own is None else own

    def wants(self, caller: Caller, catalog: Catalog, record: RequestRecord, *, route: str | None) -> bool:
        """`opted_in(caller, route_opt_in(catalog, record, route))`, with the catalog's flags computed once
        per catalog (it changes on reload). `route`: the label of the rule that chose the model (for most
        requests `record.route`; a coaching turn's record says `coaching:<context type>:<rule>`)."""
        own = key_opt_in(caller)
        if own is not None:
            return own
        flags = self._flags
        if flags is None or flags.catalog is not catalog:
            self._flags = flags = CatalogFlags.of(catalog)
        return flags.opt_in(record, route)

    def wrap(self, reply: R, *, request_body: dict[str, Any], record: RequestRecord, caller: Caller,
             endpoint: str, opted_in: bool) -> R:
        """Capture this reply if `opted_in`: a whole answer is queued now; a stream is replaced (in the
        same reply, which is returned) by one that passes every event through. `request_body`: the
        decoded request (its `model` and `stream_options`, rewritten by the gateway, are left out; the
        record's catalog model is kept as `model`)."""
        if not opted_in or self._records.closed:
            return reply
        request = {k: v for k, v in request_body.items() if k not in ("model", "stream_options")}
        if reply.stream is None:
            self._remember(caller.tenant, record.request_id)
            self._records.submit(PendingRecord(self._meta(record, caller, endpoint, stream=False), request,
                                               body=reply.body))
            return reply
        reply.stream = self._tee(reply.stream, request, record, caller, endpoint)
        return reply

    async def _tee(self, stream: AsyncIterator[bytes], request: dict[str, Any], record: RequestRecord,
                   caller: Caller, endpoint: str) -> AsyncIterator[bytes]:
        events: list[bytes] = []
        done = exhausted = False
        try:
            async for item in stream:
                events.append(item)
                if not done and ends_with_done(item):
                    done = True
                    self._remember(caller.tenant, record.request_id)  # before the client can send feedback
                yield item
            exhausted = True
        finally:
            if not exhausted:
                closing = getattr(stream, "aclose", None)
                if closing is not None:
                    await closing()  # the relay's own cleanup (connection, accounting) runs now
            if done:  # the relay has settled the record (tokens, worker) by now
                self._records.submit(PendingRecord(self._meta(record, caller, endpoint, stream=True), request,
                                                   events=events))

    def _meta(self, record: RequestRecord, caller: Caller, endpoint: str, *, stream: bool) -> dict[str, Any]:
        now, wall = time.perf_counter(), time.time()
        return {
            "type": "interaction", "v": RECORD_VERSION, "request_id": record.request_id, "timestamp": _iso(wall),
            "ts": round(wall, 3), "endpoint": endpoint, "path": record.path, "model": record.model,
            "route": record.route, "worker": record.worker, "fallback_from": record.fallback_from,
            "cache": record.cache,
            "key_id": caller.key.id if caller.key is not None else None, "tenant": caller.tenant, "stream": stream,
            "latency_ms": round((now - record.started) * 1000, 3),
            "ttft_ms": None if record.first_token is None else round((record.first_token - record.started) * 1000, 3),
            "prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
        }

    def _remember(self, tenant: str, request_id: str) -> None:
        key = (tenant, request_id)
        self._index[key] = None
        self._index.move_to_end(key)
        while len(self._index) > self.config.index_limit:
            self._index.popitem(last=False)

    async def was_captured(self, tenant: str, request_id: str) -> bool:
        """Whether interaction `request_id` of `tenant` was captured: the index, else the files."""
        if (tenant, request_id) in self._index:
            return True
        async with self._scan:
            found = await asyncio.to_thread(find_interaction, self.config.directory, request_id, tenant)
        if found:
            self._remember(tenant, request_id)
        return found

    async def add_feedback(self, caller: Caller, request_id: str, *, rating: int, label: str | None,
                           comment: str | None) -> dict[str, Any] | None:
        """Append feedback on interaction `request_id` of the caller's tenant; None if there is no such
        interaction. Returns the feedback record (as written, before redaction of the comment)."""
        if self._records.closed or not await self.was_captured(caller.tenant, request_id):
            return None
        wall = time.time()
        feedback = {"type": "feedback", "v": RECORD_VERSION, "request_id": request_id, "timestamp": _iso(wall),
                    "ts": round(wall, 3), "tenant": caller.tenant,
                    "key_id": caller.key.id if caller.key is not None else None,
                    "rating": rating, "label": label, "comment": comment}
        await self._records.put(PendingRecord(feedback))
        return feedback
