"""A request body the gateway forwards to a worker while the client is still sending it (an audio file of
tens of MB): the head it read to find `model`, and the rest, still with the client.

The worker gets the head with the model's value replaced by the worker's own id of the model (the one
byte range `MultipartHead` found; every other byte as the client sent it), then the client's chunks as
they arrive. A try can be repeated on another worker only while the gateway still holds everything it
sent: before it reads a byte beyond the head from the client (`replayable`); after that the body is gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.errors import GatewayError
from gateway.surfaces.multipart_head import MultipartHead


class BodySource(Protocol):
    """The client's body, read chunk by chunk (counted against the gateway's limit by the reader)."""

    async def read(self) -> bytes | None:
        """The next chunk, None at the end; raises `PayloadTooLarge` or `ClientDisconnected`."""


class StreamedUpload:
    def __init__(self, head: MultipartHead, content_type: str, declared_length: int | None,
                 rest: BodySource) -> None:
        """`head`: read until `model` was whole (its `model_span` set). `declared_length`: the client's
        `content-length`, if it sent one."""
        assert head.model_span is not None
        self._head = head
        self.content_type = content_type
        """The client's `multipart/form-data` content type, with its boundary (the worker needs it)."""
        self._declared_length = declared_length
        self._rest = rest
        self._replayable = True
        self.error: GatewayError | None = None
        """Why the client's body could not be read to its end (too large, the client left), once it happened:
        the real cause of the failed send it leads to."""

    @property
    def replayable(self) -> bool:
        """Nothing beyond the head was read from the client: the body can be sent again, to another worker."""
        return self._replayable

    def length_with(self, model: str) -> int | None:
        """The body's length once `model` replaces the client's model name (None: the client did not say)."""
        if self._declared_length is None:
            return None
        start, end = self._spans()
        return self._declared_length - (end - start) + len(model.encode())

    async def body_with(self, model: str) -> AsyncIterator[bytes]:
        """The body as the worker gets it: the head with `model` as the model's value, then the client's
        chunks as they come."""
        start, end = self._spans()
        buffer = self._head.buffer
        yield bytes(buffer[:start]) + model.encode() + bytes(buffer[end:])
        try:
            while (chunk := await self._rest.read()) is not None:
                self._replayable = False
                yield chunk
        except GatewayError as exc:
            self.error = exc
            raise

    def _spans(self) -> tuple[int, int]:
        span = self._head.model_span
        assert span is not None
        return span
