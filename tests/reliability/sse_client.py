"""A client's view of one chat stream through the gateway: what arrived, in what order, and when."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class StreamSeen:
    """One stream as the client saw it. Times are `time.monotonic()`."""

    began: float = 0.0
    """When the request was sent."""
    status: int = 0
    worker: str = ""
    body: str = ""
    """The body of a refused request (not a stream)."""
    pieces: list[str] = field(default_factory=list)
    """Content deltas, in order."""
    piece_times: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    error_at: float | None = None
    done_at: float | None = None
    after_done: int = 0
    """Events that came after `[DONE]` (there must be none)."""
    ended_at: float = 0.0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def ended_with_error_then_done(self) -> bool:
        return self.error is not None and self.done_at is not None and self.after_done == 0

    @property
    def completed(self) -> bool:
        return self.error is None and self.finish_reason is not None and self.done_at is not None \
            and self.after_done == 0


async def read_stream(client: httpx.AsyncClient, url: str, body: dict[str, Any],
                      on_first_content: Callable[[], None] | None = None) -> StreamSeen:
    """POST `body` (a streaming chat request) to `url` + /v1/chat/completions and read it to its end."""
    seen = StreamSeen(began=time.monotonic())
    async with client.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}) as response:
        seen.status = response.status_code
        seen.worker = response.headers.get("x-gateway-worker", "")
        if response.status_code != 200:
            seen.body = (await response.aread()).decode()
        else:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    _take(seen, line[len("data: "):], on_first_content)
    seen.ended_at = time.monotonic()
    return seen


def _take(seen: StreamSeen, data: str, on_first_content: Callable[[], None] | None) -> None:
    now = time.monotonic()
    if seen.done_at is not None:
        seen.after_done += 1
    elif data == "[DONE]":
        seen.done_at = now
    else:
        event = json.loads(data)
        if "error" in event:
            seen.error, seen.error_at = event["error"], now
            return
        for choice in event.get("choices") or []:
            if content := choice.get("delta", {}).get("content"):
                seen.pieces.append(content)
                seen.piece_times.append(now)
                if len(seen.pieces) == 1 and on_first_content is not None:
                    on_first_content()
            if choice.get("finish_reason"):
                seen.finish_reason = choice["finish_reason"]
