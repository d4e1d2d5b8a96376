"""Interaction capture: request/response pairs of opted-in traffic, for fine-tuning datasets.

Off by default. A request is captured when its key says `metadata.capture: "true"`, or when its
routing rule (else its model) says `capture: true` in the catalog and the key does not say
`metadata.capture: "false"` (a tenant's opt-out wins). Surfaces that are not captured (embeddings: see
`gateway.surfaces`) never reach `wrap`.

`wrap` costs nothing for traffic that did not opt in (the reply is returned as it is). For a
non-streaming answer it queues the body; for a stream it passes every event through unchanged,
keeping the raw events, and queues them once the stream has ended with `[DONE]` (an error event
before `[DONE]` is recorded as the interaction's `error`; a stream the client left is not recorded).
A background task takes what is queued in batches and, in a thread, folds streams into whole answers,
redacts personal data, encodes and appends to the store (`gateway.capture.store`); `close` writes
what is left. When the queue is full (`queue_limit`), interactions are dropped and counted, never
waited for; feedback (an explicit API call) waits for room instead.

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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import msgspec
import structlog

from gateway.auth.authenticator import Caller
from gateway.capture.redaction import Redactor
from gateway.capture.store import CaptureWriter, find_interaction
from gateway.observability.request_record import RequestRecord
from gateway.operator_patterns import parse_patterns
from gateway.upstream.sse_events import ends_with_done
from gateway.upstream.stream_folding import gather_sse
from routing.catalog import Catalog

_log = structlog.get_logger("gateway.capture")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

RECORD_VERSION = 1
_BATCH = 256
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
DEFAULT_DIR = "captures"
DEFAULT_FILE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    directory: str = DEFAULT_DIR
    """GATEWAY_CAPTURE_DIR: where the JSONL files go (created at the first capture)."""
    file_bytes: int = DEFAULT_FILE_BYTES
    """GATEWAY_CAPTURE_FILE_BYTES: a file is closed and a new one started at this size."""
    max_bytes: int = DEFAULT_MAX_BYTES
    """GATEWAY_CAPTURE_MAX_BYTES: the oldest files are deleted to keep the directory under this."""
    redact: tuple[str, ...] = ()
    """GATEWAY_CAPTURE_REDACT: extra RE2 patterns replaced by `[redacted]` (emails and phone numbers
    are always redacted)."""
    queue_limit: int = 10_000
    """Interactions waiting to be written; more are dropped (and counted)."""
    index_limit: int = 100_000
    """Recently captured request ids remembered for feedback without reading the files."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CaptureConfig:
        """The capture's settings from the environment; ValueError names the variable at fault."""

        def size(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r}: expected a whole number of bytes") from None
            if value < 1:
                raise ValueError(f"{name}={raw!r}: must be at least 1")
            return value

        try:
            redact = parse_patterns(env.get("GATEWAY_CAPTURE_REDACT", ""))
        except ValueError as exc:
            raise ValueError(f"GATEWAY_CAPTURE_REDACT: {exc}") from None
        config = cls(directory=env.get("GATEWAY_CAPTURE_DIR", "").strip() or DEFAULT_DIR,
                     file_bytes=size("GATEWAY_CAPTURE_FILE_BYTES", DEFAULT_FILE_BYTES),
                     max_bytes=size("GATEWAY_CAPTURE_MAX_BYTES", DEFAULT_MAX_BYTES), redact=redact)
        if config.max_bytes < config.file_bytes:
            raise ValueError("GATEWAY_CAPTURE_MAX_BYTES must be at least GATEWAY_CAPTURE_FILE_BYTES")
        return config


class ReplyLike(Protocol):
    """What `wrap` needs of a `Reply` (`gateway.inference.forwarder`): a whole body or a stream."""

    body: bytes
    stream: AsyncIterator[bytes] | None


R = TypeVar("R", bound=ReplyLike)


def _flag(spec: object) -> bool | None:
    value = getattr(spec, "capture", None)
    return value if isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class _CatalogFlags:
    """A catalog's `capture` fields by routing-rule label (`name`, else `routes[i]`) and by model."""

    catalog: Catalog
    rules: dict[str, bool]
    models: frozenset[str]

    @classmethod
    def of(cls, catalog: Catalog) -> _CatalogFlags:
        rules = {}
        for i, rule in enumerate(catalog.routing.routes):
            flag = _flag(rule)
            if flag is not None:
                rules[rule.name or f"routes[{i}]"] = flag
        return cls(catalog, rules, frozenset(m.name for m in catalog.models if _flag(m) is True))

    def opt_in(self, record: RequestRecord, route: str | None) -> bool:
        flag = self.rules.get(route or "")
        if flag is not None:
            return flag
        return (record.fallback_from or record.model) in self.models


def route_opt_in(catalog: Catalog, record: RequestRecord, route: str | None) -> bool:
    """The catalog's say on capturing a request that `record` describes (once answered): the `capture`
    of the routing rule labelled `route` if it sets one, else the `capture` of the model chosen (before
    any fallback). Reads `capture` fields where the catalog has them (absent: False)."""
    return _CatalogFlags.of(catalog).opt_in(record, route)


def key_opt_in(caller: Caller) -> bool | None:
    """The key's own say (`metadata.capture`): True, False, or None when it says nothing."""
    if caller.key is None:
        return None
    raw = caller.key.metadata.get("capture")
    if raw is None:
        return None
    value = raw.strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _Pending:
    """One record waiting for the writer: built (folded, redacted) in the writer's thread."""

    meta: dict[str, Any]
    request: dict[str, Any] | None = None
    body: bytes | None = None
    events: list[bytes] | None = None

    def build(self, redactor: Redactor) -> dict[str, Any]:
        record = dict(self.meta)
        if record["type"] == "feedback":
            if record.get("comment"):
                record["comment"] = redactor.text(record["comment"])
            return record
        error: dict[str, Any] | None = None
        if self.events is not None:
            gathered = gather_sse(record["endpoint"], self.events)
            response, error = gathered.answer(), gathered.error
        else:
            decoded = _decode(self.body or b"{}")
            response = decoded if isinstance(decoded, dict) else {"value": decoded}
        usage = response.get("usage")
        if isinstance(usage, dict):  # what the client saw wins over what was counted
            record["prompt_tokens"] = usage.get("prompt_tokens", record["prompt_tokens"])
            record["completion_tokens"] = usage.get("completion_tokens", record["completion_tokens"])
        choices = response.get("choices") or [{}]
        first = choices[0] if isinstance(choices[0], dict) else {}
        record["finish_reason"] = first.get("finish_reason")
        record["error"] = error
        record["request"] = redactor.scrub(self.request or {})
        record["response"] = redactor.scrub(response)
        return record


class InteractionCapture:
    def __init__(self, config: CaptureConfig | None = None) -> None:
        self.config = config or CaptureConfig()
        self._redactor = Redactor(self.config.redact)
        self._writer = CaptureWriter(self.config.directory, file_bytes=self.config.file_bytes,
                                     max_bytes=self.config.max_bytes)
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(self.config.queue_limit)
        self._task: asyncio.Task[None] | None = None
        self._index: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._scan = asyncio.Lock()
        self._closed = False
        self._flags: _CatalogFlags | None = None
        self.captured = 0
        """Interactions queued for writing."""
        self.dropped = 0
        """Interactions dropped because the queue was full (or the capture closed)."""
        self.failed = 0
        """Records that could not be written (disk full, unwritable directory, ...)."""

    @property
    def directory(self) -> str:
        return self.config.directory

    async def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="interaction-capture")

    async def close(self) -> None:
        """Write everything queued, then close the current file. Later captures are dropped."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        else:  # never started: write what was queued anyway
            pending = []
            while not self._queue.empty():
                item = self._queue.get_nowait()
                self._queue.task_done()
                if item is not None:
                    pending.append(item)
            if pending:
                await asyncio.to_thread(self._write, pending)
        await asyncio.to_thread(self._writer.close)

    async def flush(self) -> None:
        """Wait until everything queued so far is written (needs `start`)."""
        await self._queue.join()

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
            self._flags = flags = _CatalogFlags.of(catalog)
        return flags.opt_in(record, route)

    def wrap(self, reply: R, *, request_body: dict[str, Any], record: RequestRecord, caller: Caller,
             endpoint: str, opted_in: bool) -> R:
        """Capture this reply if `opted_in`: a whole answer is queued now; a stream is replaced (in the
        same reply, which is returned) by one that passes every event through. `request_body`: the
        decoded request (its `model` and `stream_options`, rewritten by the gateway, are left out; the
        record's catalog model is kept as `model`)."""
        if not opted_in or self._closed:
            return reply
        request = {k: v for k, v in request_body.items() if k not in ("model", "stream_options")}
        if reply.stream is None:
            self._remember(caller.tenant, record.request_id)
            self._submit(_Pending(self._meta(record, caller, endpoint, stream=False), request, body=reply.body))
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
                self._submit(_Pending(self._meta(record, caller, endpoint, stream=True), request, events=events))

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

    def _submit(self, pending: _Pending) -> None:
        if self._closed:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                _log.warning("capture_dropped", dropped=self.dropped, queue_limit=self.config.queue_limit)
            return
        self.captured += 1

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
        if self._closed or not await self.was_captured(caller.tenant, request_id):
            return None
        wall = time.time()
        feedback = {"type": "feedback", "v": RECORD_VERSION, "request_id": request_id, "timestamp": _iso(wall),
                    "ts": round(wall, 3), "tenant": caller.tenant,
                    "key_id": caller.key.id if caller.key is not None else None,
                    "rating": rating, "label": label, "comment": comment}
        await self._queue.put(_Pending(feedback))
        return feedback

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                pending = [item for item in batch if item is not None]
                if pending:
                    await asyncio.to_thread(self._write, pending)
            except Exception:  # the writer must outlive any one batch
                self.failed += len(batch)
                _log.exception("capture_batch_failed", records=len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return

    def _write(self, pending: list[_Pending]) -> None:
        """In the writer's thread: build, redact, encode and append a batch."""
        lines = []
        for item in pending:
            try:
                lines.append(_encode(item.build(self._redactor)) + b"\n")
            except Exception:  # one odd record must not stop the others
                self.failed += 1
                _log.exception("capture_record_failed", request_id=item.meta.get("request_id"))
        try:
            self._writer.write(lines)
        except OSError as exc:
            self.failed += len(lines)
            _log.error("capture_write_failed", directory=self.config.directory, error=str(exc), records=len(lines))
