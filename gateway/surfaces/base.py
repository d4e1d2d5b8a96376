"""The interface every API surface implements, and the decoding all JSON surfaces share.

A surface is what a client speaks at some paths (`/v1/chat/completions`, later `/v1/messages`, ...). The
pipeline in between knows no surface: it asks the request's surface what routing rules and prefix
affinity see, what the cache key is made of, and how many tokens to reserve, and the HTTP layer asks it
how to encode the answer, the stream and the errors. Surfaces are stateless, so one instance of each
serves every request.

Bodies stay plain dicts (one msgspec decode, no copy) so that every field the gateway does not use
reaches the worker untouched; a surface checks only the fields the gateway relies on, each failure an
`InvalidRequest` naming its `param`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from gateway.errors import GatewayError, InvalidRequest
from gateway.limits.decisions import Admission
from gateway.limits.headers import openai_headers
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.native_relay import NativeEvents

Body = dict[str, Any]
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class RequestDoc:
    """How a surface's request is documented in the OpenAPI schema (never used to validate)."""

    summary: str
    schema: dict[str, Any]
    """The JSON schema of the body."""
    example: Body
    description: str | None = None


class Surface(ABC):
    """One API surface; subclasses declare the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    """Names the surface in records, metrics and logs (`record.endpoint`), cache entries and captures;
    worker protocols serve a surface by this name (e.g. `chat/completions`)."""
    paths: ClassVar[tuple[str, ...]]
    """The paths clients POST this surface's requests to."""
    title: ClassVar[str]
    """How messages to the client name the surface ("Embeddings cannot be streamed.")."""
    doc: ClassVar[RequestDoc]
    streamable: ClassVar[bool] = True
    """False: a request asking for a stream is refused (`param` = "stream")."""
    captured: ClassVar[bool] = True
    """Interaction capture records this surface's traffic (when the key or route opts in)."""
    translates: ClassVar[bool] = False
    """True: the surface is not OpenAI's. Its requests reach workers translated (`to_worker`) into the
    OpenAI surface named `worker_name`, and their answers come back through `encode_answer` and
    `encode_stream`; the pipeline in between (routing, limits, cache, capture) sees the OpenAI request."""
    worker_name: ClassVar[str]
    """The surface workers are asked for this surface's requests: its own `name` unless it translates."""
    native_capable: ClassVar[bool] = False
    """A translating surface some workers serve themselves (their protocol lists its `name`): they are sent
    the client's request as it came (`native_body`), and their answers come back through `native_answer`
    and `native_stream` instead of the translation."""
    native_headers: ClassVar[tuple[str, ...]] = ()
    """A translating surface's client headers that a worker serving it natively is sent as they came."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and "worker_name" not in cls.__dict__:
            cls.worker_name = cls.name

    def decode(self, raw: bytes) -> InferenceRequest:
        """The request in `raw`, checked; `InvalidRequest` names the `param` at fault."""
        return self.decode_body(decode_object(raw))

    def decode_body(self, body: Body) -> InferenceRequest:
        """The request of the decoded JSON `body`, checked (a translating surface that needs more of the
        client's body than `to_worker` gives decodes it first, then calls this)."""
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise InvalidRequest("`model` must be a string.", param="model", code="invalid_type")
        stream = body.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise InvalidRequest("`stream` must be a boolean.", param="stream", code="invalid_type")
        self.check(body)
        if stream and not self.streamable:
            raise InvalidRequest(f"{self.title} cannot be streamed.", param="stream", code="invalid_value")
        return InferenceRequest(self, self.to_worker(body) if self.translates else body, stream)

    @abstractmethod
    def check(self, body: Body) -> None:
        """Raise `InvalidRequest` (with its `param`) unless the surface's own fields are usable."""

    @abstractmethod
    def routing_text(self, body: Body, match_on: str = "last_user_message") -> str:
        """The text routing rules match: `match_on` is the catalog's `last_user_message` or
        `conversation`; a surface without turns gives its whole input for either."""

    def conversation(self, body: Body) -> str:
        """The whole prompt in order, for prefix affinity (requests sharing a prefix share a worker)."""
        return self.routing_text(body, "conversation")

    @abstractmethod
    def prompt_tokens_estimate(self, body: Body) -> int:
        """The prompt's tokens, estimated before any worker counts them (admission, and a stream the
        client left before its usage came)."""

    @abstractmethod
    def completion_reserve(self, body: Body, default: int) -> int:
        """The tokens admission reserves for the answer: the request's own limit, else `default`."""

    @abstractmethod
    def is_deterministic(self, body: Body) -> bool:
        """The same request gets the same answer: cacheable unless the catalog opts out."""

    @abstractmethod
    def cache_fields(self, body: Body) -> Body | None:
        """The fields that can change the answer, for the cache key (fields that only change its
        delivery left out), or None when this request's answer is never cached."""

    def to_worker(self, body: Body) -> Body:
        """A translating surface's checked request as the body of its `worker_name` surface."""
        return body

    def encode_answer(self, answer: bytes, request: InferenceRequest) -> bytes:
        """A translating surface's whole answer from the worker's (OpenAI-shaped, as the cache and capture
        keep it); `request` is what was sent (translated)."""
        return answer

    def encode_stream(self, events: AsyncIterator[bytes], request: InferenceRequest) -> AsyncIterator[bytes]:
        """A translating surface's stream from the worker's SSE events (OpenAI-shaped, an error event and
        `[DONE]` when it failed). It must close `events` when its own stream is closed (the client left:
        closing `events` closes the worker's connection)."""
        return events

    def native_body(self, request: InferenceRequest) -> Body:
        """What a worker that serves this translating surface natively is sent (its protocol declares it):
        the client's request as it came (`request.native`), unless the surface adds to it."""
        if request.native is None:
            raise NotImplementedError(f"{self.title} requests are not sent natively")
        return request.native

    def native_answer(self, answer: bytes, request: InferenceRequest) -> bytes:
        """A native worker's whole answer as the client gets it (what names the gateway's side rewritten)."""
        return answer

    def native_stream(self, request: InferenceRequest) -> NativeEvents:
        """How the relay reads a native worker's stream of this surface."""
        raise NotImplementedError(f"{self.title} streams are not relayed natively")

    def error_body(self, error: GatewayError) -> Body:
        """The error object a client of this surface expects (OpenAI's by default)."""
        return error.body()

    def rate_limit_headers(self, admission: Admission) -> dict[str, str]:
        """The caller's limits in the headers a client of this surface reads (OpenAI's `x-ratelimit-*` by
        default: `gateway.limits.headers`); only callers with limits are admitted, so others never ask."""
        return openai_headers(admission)


def decode_object(raw: bytes) -> Body:
    """`raw` decoded as a JSON object (one msgspec decode)."""
    try:
        body = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for invalid UTF-8
        raise InvalidRequest("We could not parse the JSON body of your request. The body must be a "
                             "JSON object.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body
