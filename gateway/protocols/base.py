"""What every worker protocol is: the one interface the forwarder talks to workers through, and what each
protocol declares about itself (the API surfaces its workers serve natively, the request parameters it
understands).

A protocol maps a request to the path and body its workers take, their whole answer back to the OpenAI
shape, their stream to the client's SSE (relayed by `gateway.upstream`, which does the I/O), and their
refusals to our errors. It is stateless: one instance serves every request of every worker of its
kinds (`gateway.protocols.registry`). Adding a protocol is one module implementing `WorkerProtocol` and
one line in the registry; the forwarder does not change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import msgspec

from gateway.errors import UpstreamError, WorkerRejected, worker_error
from gateway.surfaces.request import Endpoint, InferenceRequest
from gateway.upstream.chunk_tap import ChunkTap
from gateway.upstream.native_relay import relay_native_sse
from gateway.upstream.sse_relay import StreamCutoff, StreamOutcome
from gateway.upstream.stream_connection import UpstreamStream
from gateway.workers.pool import Placement

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a protocol's workers can be asked."""

    surfaces: frozenset[Endpoint]
    """The API surfaces its workers serve natively (`chat/completions`, `completions`, `embeddings`, ...;
    `messages` and `responses`: sent as the client sent them, instead of translated to chat)."""
    parameters: Mapping[Endpoint, frozenset[str]] | None = None
    """Per surface, the request parameters the protocol understands; any other one is not sent (the
    worker would not understand it). None: the body goes to the worker as the client sent it, every
    parameter, and the worker judges (vLLM refuses what it does not know, with a 400)."""
    counts_tokens: bool = False
    """Its workers can count the tokens of a chat request's prompt, chat template and tools included
    (`WorkerProtocol.token_count`): token counting endpoints ask them rather than estimate."""

    def serves(self, surface: str) -> bool:
        """Whether its workers serve `surface` (a surface's name) natively."""
        return surface in self.surfaces

    def understands(self, surface: Endpoint, parameter: str) -> bool:
        """Whether `parameter` of a `surface` request reaches the worker (as it is or mapped)."""
        if surface not in self.surfaces:
            return False
        return self.parameters is None or parameter in self.parameters.get(surface, ())


@dataclass(slots=True)
class StreamRelay:
    """What relaying one worker stream needs: who answers it, for which request, within which limits, and
    where its outcome goes. One per streamed attempt."""

    worker_name: str
    upstream_model: str
    """The worker's own id of the model (the name a translated stream shows)."""
    endpoint: Endpoint
    request_id: str
    idle_timeout: float
    deadline: float
    """The loop time by which the whole stream must be over."""
    client_wants_usage: bool
    prompt_tokens_estimate: int
    on_end: Callable[[StreamOutcome], None]
    capture: list[bytes] | None
    """Every chunk's JSON is appended to it (for the cache), the usage chunk included."""
    cutoff: StreamCutoff
    """How the gateway ends the stream early (its drain deadline)."""
    tap: ChunkTap | None = None
    """A translating surface's request: where the relay notes each chunk it decoded (`chunk_tap`)."""
    on_first: Callable[[], None] | None = None
    """Called once, at the first chunk with content (the worker's prefill is over), before `on_end`."""


_T = TypeVar("_T")

TokenCountCalls = Generator[tuple[str, bytes], bytes, int]
"""How a worker counts a prompt's tokens: the POSTs to make in turn, each a (path, JSON body), each sent
the previous one's 2xx answer body; it returns the count. The protocol builds the requests and reads the
answers (raising `UpstreamError` for one it cannot read); the caller does the I/O."""


def counting_answer(body: bytes, field: str, kind: type[_T]) -> _T:
    """The `field` of a token-counting call's JSON answer, of type `kind`; `UpstreamError` otherwise."""
    try:
        value = msgspec.json.decode(body)[field]
    except (msgspec.DecodeError, UnicodeDecodeError, TypeError, KeyError, IndexError):
        value = None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UpstreamError(f"the worker's answer to a token count has no `{field}` ({kind.__name__})",
                            code="invalid_upstream_answer")
    return value


class WorkerProtocol(ABC):
    """How the gateway talks to one kind of worker."""

    capabilities: ClassVar[Capabilities]
    native_prefix: ClassVar[str] = "/"
    """Where, below the worker's catalog URL, the translating surfaces it serves natively are (`/messages`
    under a `/v1` URL)."""
    closes_connection_after_stream: ClassVar[bool] = False
    """The worker closes its connection after a streamed answer though it announced keep-alive: streamed
    requests then ask for `Connection: close`, so a pooled connection it has closed is never reused."""

    @abstractmethod
    def request(self, request: InferenceRequest, placement: Placement) -> tuple[str, bytes]:
        """The path (below the worker's URL) and the JSON body to POST for `request` on `placement` (under
        the worker's own id of the model). Raises `InvalidRequest` for what the workers cannot do."""

    @abstractmethod
    def answer(self, request: InferenceRequest, placement: Placement, body: bytes, request_id: str) -> bytes:
        """A worker's whole 2xx answer as the OpenAI body of `request`'s surface. Raises the worker's error for
        an error it carries, and `UpstreamError` for a body that is not the worker's."""

    @abstractmethod
    def relay(self, response: UpstreamStream, stream: StreamRelay) -> AsyncIterator[bytes]:
        """The client's SSE bytes for the worker's open stream, ending `[DONE]` (an error event first when
        the stream fails); `stream.on_end` gets the outcome whatever happens."""

    def token_count(self, chat: Mapping[str, Any], placement: Placement) -> TokenCountCalls:
        """The calls that count the prompt tokens of the chat completions request `chat` (its `messages`
        and `tools`) on `placement`. Only for protocols whose capabilities say `counts_tokens`."""
        raise NotImplementedError(f"{type(self).__name__} workers do not count tokens")

    def native_request(self, request: InferenceRequest, placement: Placement) -> tuple[str, bytes]:
        """The path and body for a translating surface's request sent as its client sent it (its
        `model` the worker's id), to a worker that serves the surface natively."""
        surface = request.surface
        body = surface.native_body(request)
        body["model"] = placement.upstream_model
        return self.native_prefix + surface.name, _encode(body)

    def native_relay(self, response: UpstreamStream, stream: StreamRelay, request: InferenceRequest
                     ) -> AsyncIterator[bytes]:
        """The client's bytes for a native stream of `request`'s surface (read by the surface's events)."""
        return relay_native_sse(response, request.surface.native_stream(request), worker_name=stream.worker_name,
                                idle_timeout=stream.idle_timeout, deadline=stream.deadline, on_end=stream.on_end,
                                on_first=stream.on_first, cutoff=stream.cutoff)

    @staticmethod
    def rejection(status: int, body: bytes) -> WorkerRejected:
        """A worker's non-2xx answer as our error. The default reads every shape workers send: OpenAI's,
        vLLM's (integer `code`s, class-like `type`s), `{"error": "text"}` (Ollama's), plain text."""
        return worker_error(status, body)
