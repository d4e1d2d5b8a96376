"""The decoded inference request that flows through the pipeline, carrying the surface it came in by.

What depends on the surface (routing text, cache key, token estimate, encoding) is asked of
`request.surface`; what every surface has in common (the requested model, streaming, session affinity)
is read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from gateway.upstream.chunk_tap import ChunkTap

if TYPE_CHECKING:
    from gateway.surfaces.base import Surface

Endpoint = Literal["chat/completions", "completions", "embeddings", "rerank", "score", "tokenize", "detokenize"]
"""The surfaces workers are asked by name (a protocol declares which it serves; Ollama's mapping is
written per name)."""


@dataclass(slots=True)
class InferenceRequest:
    surface: Surface
    body: dict[str, Any]
    """The decoded JSON body, forwarded to the worker as it is (its `model` rewritten)."""
    stream: bool
    session: str | None = None
    """A conversation the gateway keeps (coaching sessions): routed with affinity to one worker."""
    tap: ChunkTap | None = None
    """A translated stream's: the relay notes in it each chunk it decoded, so the surface's encoder
    need not decode it again (`gateway.upstream.chunk_tap`). None for the rest."""

    @property
    def endpoint(self) -> Endpoint:
        """The surface workers are asked (the request's own, or the one a translating surface becomes),
        typed as the names worker protocols know today; `gateway.protocols` decides per protocol which
        surfaces it serves."""
        return cast(Endpoint, self.surface.worker_name)

    @property
    def requested_model(self) -> str | None:
        model = self.body.get("model")
        return model if model else None

    @property
    def wants_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def session_key(self) -> str | None:
        """A session or user id for session affinity: a kept conversation, `session_id`, else OpenAI's `user`."""
        if self.session:
            return self.session
        for name in ("session_id", "user"):
            value = self.body.get(name)
            if isinstance(value, str) and value:
                return value
        return None
