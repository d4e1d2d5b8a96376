"""How a translating surface reads the chunks the relay has already decoded, rather than splitting and
decoding the relay's bytes a second time.

The relay decodes every worker chunk (to check it, count its content and find its usage) and yields it
as SSE bytes, which a translating surface (Responses, Messages) turns into its own events. Given a tap,
the relay notes each event it yields beside its decoded chunk; the translator, handed that very event
(the same object: capture's tee passes it on untouched), takes the chunk from the tap. Anything else in
the stream (the relay's own error event or usage chunk, a cache replay, another protocol's relay) is
not the tapped event, and the translator decodes it as before. Chat streams have no tap and pay
nothing for it: one tap a translated stream, no allocation per chunk.
"""

from __future__ import annotations

from typing import Any


class ChunkTap:
    """The event a relay yielded last, and its decoded chunk."""

    __slots__ = ("_chunk", "_event")

    def __init__(self) -> None:
        self._event: bytes | None = None
        self._chunk: dict[str, Any] | None = None

    def saw(self, event: bytes, chunk: dict[str, Any]) -> None:
        """The relay is about to yield `event`, the SSE form of `chunk` (a worker chunk, no error)."""
        self._event = event
        self._chunk = chunk

    def chunk_of(self, event: bytes) -> dict[str, Any] | None:
        """`event`'s decoded chunk when it is the event the relay yielded last, else None (decode it).
        The chunk is the relay's: read it, never change it."""
        return self._chunk if event is self._event else None
