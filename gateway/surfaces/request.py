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
    from gateway.errors import Untranslatable
    from gateway.surfaces.base import Surface
    from gateway.surfaces.upload import StreamedUpload

Endpoint = Literal["chat/completions", "completions", "embeddings", "rerank", "score", "tokenize", "detokenize",
                   "messages", "responses", "audio/transcriptions", "audio/translations"]
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
    native: dict[str, Any] | None = None
    """A translating surface's request as its client sent it (checked), for a worker that serves the
    surface natively (`Surface.native_body` makes what is sent); None for the other surfaces."""
    worker_headers: dict[str, str] | None = None
    """Client headers a worker serving the surface natively is sent (`Surface.native_headers`)."""
    untranslatable: Untranslatable | None = None
    """A field of `native` the translation could not carry (`body` is translated without it): the 400 for
    this request unless a worker serving the surface natively answers it."""
    upload: StreamedUpload | None = None
    """A body streamed to the worker as the client sends it (audio); `body` then holds only the form's
    text fields read before `model`."""
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
