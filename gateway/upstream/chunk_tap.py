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
    """The event a relay yielded last, and its decoded chunk. Plain attributes, set and read once per
    chunk without a call: the relay sets both just before it yields `event`; a translator reads
    `chunk` only when the piece it was handed `is` `event`."""

    __slots__ = ("chunk", "event")

    def __init__(self) -> None:
        self.event: bytes | None = None
        """The SSE event (`data: {...}\\n\\n`) the relay yields next, or last yielded."""
        self.chunk: dict[str, Any] = {}
        """`event`'s chunk, decoded (a worker chunk: no error). The relay's: read it, never change it."""
