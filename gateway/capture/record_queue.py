"""The background writer: captured records wait in a bounded queue and are written in batches.

A background task takes what is queued in batches and, in a thread, folds streams into whole answers
(`gateway.upstream.stream_folding`), redacts personal data, encodes and appends to the store
(`gateway.capture.store`); `close` writes what is left. When the queue is full (`queue_limit`),
interactions are dropped and counted, never waited for (`submit`); feedback (an explicit API call)
waits for room instead (`put`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from gateway.capture.config import CaptureConfig
from gateway.capture.redaction import Redactor
from gateway.capture.store import CaptureWriter
from gateway.upstream.stream_folding import gather_sse

_log = structlog.get_logger("gateway.capture")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

_BATCH = 256


@dataclass(slots=True)
class PendingRecord:
    """One record waiting for the writer: built (folded, redacted) in the writer's thread, so that the
    request path only keeps what the client saw."""

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


class RecordQueue:
    """The queue of records to write and the task that writes them, with their counters."""

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self._redactor = Redactor(config.redact)
        self._writer = CaptureWriter(config.directory, file_bytes=config.file_bytes, max_bytes=config.max_bytes)
        self._queue: asyncio.Queue[PendingRecord | None] = asyncio.Queue(config.queue_limit)
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.captured = 0
        """Interactions queued for writing."""
        self.dropped = 0
        """Interactions dropped because the queue was full (or the capture closed)."""
        self.failed = 0
        """Records that could not be written (disk full, unwritable directory, ...)."""

    async def start(self) -> None:
        if self._task is None and not self.closed:
            self._task = asyncio.create_task(self._run(), name="interaction-capture")

    async def close(self) -> None:
        """Write everything queued, then close the current file. Later records are dropped."""
        if self.closed:
            return
        self.closed = True
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

    def submit(self, pending: PendingRecord) -> None:
        """Queue an interaction, or drop it (and count it) when the queue is full or closed."""
        if self.closed:
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

    async def put(self, pending: PendingRecord) -> None:
        """Queue a record, waiting for room (feedback: a caller asked for it explicitly)."""
        await self._queue.put(pending)

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

    def _write(self, pending: list[PendingRecord]) -> None:
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
