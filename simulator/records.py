"""What the simulator saw of each request, for tests and benchmarks to assert on.

The server fills a `RequestRecord` as its request progresses (headers, body, each chunk's send time,
disconnection); a `RecordBook` keeps them and hands out consistent copies to other threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class RequestRecord:
    """One request as the simulator received and answered it. Times are `time.monotonic()`."""

    path: str
    method: str
    headers: dict[str, str]
    """Request headers as received, names lower-cased."""
    started: float
    body: dict[str, Any] | None = None
    """The decoded JSON body, None when there was none or it was not a JSON object."""
    model: str | None = None
    stream: bool = False
    status: int = 0
    """HTTP status sent (0 until the status line goes out, and forever under `never-answer`)."""
    chunk_times: list[float] = field(default_factory=list)
    """When each SSE event or NDJSON line was written."""
    finished: float | None = None
    """When the simulator finished answering (including when it dropped the connection on purpose)."""
    disconnected: float | None = None
    """When the simulator noticed that the client went away (its handler was cancelled or a write failed)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    """Prompt tokens found in the KV cache (their prefill was skipped)."""
    fault: str | None = None
    """The fault injected into this request, if any."""
    request_id: str | None = None
    """The response id's suffix (vLLM: from `X-Request-Id` when sent)."""
    upload_bytes: int | None = None
    """An audio upload: the size of its file, as read."""
    body_first_at: float | None = None
    """An audio upload: when its body's first part arrived."""
    body_end_at: float | None = None
    """An audio upload: when its body had been read to the end."""

    def copy(self) -> RequestRecord:
        """A copy that later changes to this record do not affect."""
        return replace(self, headers=dict(self.headers), chunk_times=list(self.chunk_times))


RecordsPredicate = Callable[[list[RequestRecord]], bool]
"""A condition on the records, for `wait_for`."""


class RecordBook:
    """The records of one simulator (the newest `max_records`), safe to read from any thread."""

    def __init__(self, max_records: int | None = None) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=max_records)

    def open(self, path: str, method: str, headers: Mapping[str, str]) -> RequestRecord:
        """Start the record of a request that just arrived."""
        record = RequestRecord(
            path=path,
            method=method,
            headers={name.lower(): value for name, value in headers.items()},
            started=time.monotonic(),
        )
        with self._lock:
            self._records.append(record)
        return record

    def snapshot(self) -> list[RequestRecord]:
        """Copies of all records so far, oldest first."""
        with self._lock:
            return [record.copy() for record in self._records]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def wait_for(self, predicate: RecordsPredicate, timeout: float, poll_s: float = 0.005) -> bool:
        """Block this thread until `predicate(records)` holds; False if `timeout` passes first."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            if predicate(self.snapshot()):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            pause.wait(min(poll_s, remaining))

    async def wait_for_async(
        self,
        predicate: RecordsPredicate,
        timeout: float,  # noqa: ASYNC109 -- the blocking wait_for's signature
        poll_s: float = 0.005,
    ) -> bool:
        """Like `wait_for`, without blocking the event loop (for a simulator in the caller's loop)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self.snapshot()):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(poll_s, remaining))
