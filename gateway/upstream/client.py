"""The data-plane client for every worker, whatever its protocol (`gateway.protocols` says which path and
body to send, and how to read the answer).

One aiohttp `ClientSession` with keep-alive serves every worker's whole answers and uploads; streamed
answers go through the gateway's own connections (`stream_pool`, built for hundreds of streams at a
chunk every few ms). aiohttp's errors are translated here, where the library is called, so the rest of
the gateway sees only `gateway.errors`.
Closing a response before its end drops the connection, which is how vLLM learns to stop generating.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass

import aiohttp

from gateway.errors import UpstreamTimeout, WorkerRejected, WorkerUnreachable, worker_error
from gateway.upstream.stream_connection import UpstreamStream
from gateway.upstream.stream_pool import StreamPool
from routing.catalog import WorkerSpec

_MAX_ERROR_BODY = 64 * 1024

WorkerResponse = aiohttp.ClientResponse
"""A worker's open response, as `WorkerClient.send` hands it back (named here so that the layers above
can pass it on without importing aiohttp)."""

Rejection = Callable[[int, bytes], WorkerRejected]
"""How a worker's non-2xx answer (status, body) becomes our error: each protocol says."""


@dataclass(frozen=True, slots=True)
class WorkerTarget:
    """Where one request goes: the worker, and the headers the worker itself needs."""

    worker: WorkerSpec
    auth_header: str | None
    connect_timeout: aiohttp.ClientTimeout

    @classmethod
    def for_worker(cls, worker: WorkerSpec, env: Mapping[str, str]) -> WorkerTarget:
        key = env.get(worker.api_key_env) if worker.api_key_env else None
        timeout = aiohttp.ClientTimeout(total=None, connect=worker.timeouts.connect,
                                        sock_connect=worker.timeouts.connect)
        return cls(worker=worker, auth_header=f"Bearer {key}" if key else None, connect_timeout=timeout)


class WorkerClient:
    """Sends requests to workers and hands back the open response."""

    def __init__(self, *, max_connections: int = 0) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._streams = StreamPool()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0,
                                         ttl_dns_cache=60, enable_cleanup_closed=True)
        # Timeouts are set per request from the worker's own settings.
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                                              auto_decompress=True, skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        await self._streams.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, target: WorkerTarget, path: str, body: bytes, request_id: str, *, wait: float,
                   rejection: Rejection = worker_error, close_connection: bool = False,
                   headers: Mapping[str, str] | None = None) -> WorkerResponse:
        """POST `body` to the worker and wait at most `wait` seconds for its response headers.

        Returns a 2xx response whose body is still unread: the caller reads or streams it, and must
        `close()` it if it stops early. A non-2xx answer is read and raised as `rejection` makes it.
        `close_connection`: ask for `Connection: close`, so the connection is not pooled after this
        response (for a worker that closes it anyway, which would fail the next request sent on it).
        `headers`: more to send (a client's, for a worker that serves the client's surface natively).
        """
        session = self._started()
        worker = target.worker
        sent = _headers(target, request_id, "application/json", headers)
        if close_connection:
            sent["Connection"] = "close"
        with _failures(worker, f"did not answer within {wait:.3g} s"):
            async with asyncio.timeout(wait):
                # Never follow a redirect: the gateway calls its catalog's workers and nothing else.
                response = await session.post(worker.url + path, data=body, headers=sent,
                                              timeout=target.connect_timeout, allow_redirects=False)
        return await self._accepted(response, worker.name, rejection, wait)

    async def open_stream(self, target: WorkerTarget, path: str, body: bytes, request_id: str, *, wait: float,
                          rejection: Rejection = worker_error, close_connection: bool = False,
                          headers: Mapping[str, str] | None = None) -> UpstreamStream:
        """`send` for a streamed answer: the same request and failures, the open response on the gateway's
        own connection (`stream_connection`), for a relay to read or push. A non-2xx answer is raised."""
        sent = _headers(target, request_id, "application/json", headers)
        if close_connection:
            sent["Connection"] = "close"
        worker = target.worker
        response = await self._streams.open(worker.url, path, body, sent, worker_name=worker.name, wait=wait,
                                            connect_timeout=worker.timeouts.connect)
        if response.status < 300:
            return response
        raise rejection(response.status, await self._streams.read_error(response, wait))

    async def send_upload(self, target: WorkerTarget, path: str, body: AsyncIterator[bytes], request_id: str, *,
                          content_type: str, length: int | None, wait: float, first_byte: float,
                          rejection: Rejection = worker_error,
                          headers: Mapping[str, str] | None = None) -> WorkerResponse:
        """POST a body that is still arriving (`body`'s chunks are sent as they come; `length`: its size,
        else it goes chunked) and wait for the response headers: at most `wait` seconds in all, and at
        most `first_byte` seconds once the body was sent. Like `send`, a non-2xx answer is raised.
        `headers`: more to send (the try's `traceparent`)."""
        session = self._started()
        worker = target.worker
        headers = _headers(target, request_id, content_type, headers)
        if length is not None:
            headers["Content-Length"] = str(length)
        with _failures(worker, "did not answer in time"):
            async with asyncio.timeout(wait) as timer:
                response = await session.post(worker.url + path, data=_then_wait(body, timer, first_byte),
                                              headers=headers, timeout=target.connect_timeout,
                                              allow_redirects=False)
        return await self._accepted(response, worker.name, rejection, first_byte)

    def _started(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("WorkerClient.start() was not called")
        return self._session

    async def _accepted(self, response: WorkerResponse, worker_name: str, rejection: Rejection,
                        wait: float) -> WorkerResponse:
        """A 2xx `response` as it is; any other read (within `wait`) and raised as `rejection` makes it."""
        if response.status < 300:
            return response
        try:
            raw = await self.read_body(response, worker_name, wait)
        finally:
            response.close()
        raise rejection(response.status, raw[:_MAX_ERROR_BODY])

    async def read_body(self, response: WorkerResponse, worker_name: str, wait: float) -> bytes:
        """Read a whole (non-streaming) body within `wait` seconds, translating failures."""
        try:
            async with asyncio.timeout(wait):
                return await response.read()
        except TimeoutError:
            response.close()
            raise UpstreamTimeout(f"worker {worker_name!r} did not finish its answer within {wait:.3g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            response.close()
            raise WorkerUnreachable(f"worker {worker_name!r} broke off its answer ({_reason(exc)})") from None


async def _then_wait(body: AsyncIterator[bytes], timer: asyncio.Timeout, first_byte: float) -> AsyncIterator[bytes]:
    """`body`'s chunks; once they are all sent, the worker has `first_byte` seconds (within `timer`'s) to
    answer."""
    async for chunk in body:
        yield chunk
    when = timer.when()
    soon = asyncio.get_running_loop().time() + first_byte
    with contextlib.suppress(RuntimeError):  # the worker answered before the body's end: the wait is over
        timer.reschedule(soon if when is None else min(when, soon))


def _headers(target: WorkerTarget, request_id: str, content_type: str,
             extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What every request to a worker carries: its content type, our request id (unless the catalog says
    not to), the worker's own credentials (never the client's)."""
    headers = {**extra, "Content-Type": content_type} if extra else {"Content-Type": content_type}
    if target.worker.send_request_id:
        headers["X-Request-Id"] = request_id
    if target.auth_header:
        headers["Authorization"] = target.auth_header
    return headers


@contextlib.contextmanager
def _failures(worker: WorkerSpec, timed_out: str) -> Iterator[None]:
    """aiohttp's failures to reach `worker` (or its timeout: "worker ... `timed_out`") as ours."""
    try:
        yield
    except TimeoutError:
        raise UpstreamTimeout(f"worker {worker.name!r} {timed_out}") from None
    except aiohttp.ServerTimeoutError:
        raise UpstreamTimeout(f"could not connect to worker {worker.name!r} within "
                              f"{worker.timeouts.connect:g} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise WorkerUnreachable(f"worker {worker.name!r} is unreachable ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.strerror or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
