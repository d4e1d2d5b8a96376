"""Running a simulated worker: in the caller's event loop, or in a thread of its own.

`start_simulator(config)` is an async context manager yielding a started `Simulator`;
`SimulatorThread(config)` runs one on its own event loop in a daemon thread, for synchronous code.
Both expose `url` (the root, without `/v1`), `records`, `wait_for` and `reset`. The server runs
with aiohttp's handler cancellation, so a client disconnect cancels its handler at once (as vLLM
aborts a request whose client went away).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable
from types import TracebackType

from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.engine import Engine
from simulator.kv_events import KvEventPublisher
from simulator.metrics import VllmMetrics
from simulator.ollama_app import build_ollama_app
from simulator.ollama_models import ModelStore
from simulator.records import RecordBook, RecordsPredicate, RequestRecord
from simulator.streaming import make_recording_middleware
from simulator.vllm_app import VllmEndpoints, build_vllm_app


class Simulator:
    """One simulated vLLM or Ollama worker: its state, its aiohttp app, and its listening socket."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.book = RecordBook(config.max_records)
        self.store: ModelStore | None = None
        self.metrics: VllmMetrics | None = None
        middlewares = [make_recording_middleware(self.book)]
        if config.kind == "vllm":
            self.metrics = VllmMetrics(config.models[0], config.block_tokens, config.kv_blocks)
            self.engine = Engine(config, self.metrics)
            self.app = build_vllm_app(VllmEndpoints(config, self.engine, self.metrics), middlewares)
        else:
            self.store = ModelStore(config)
            self.engine = Engine(config)
            self.app = build_ollama_app(config, self.engine, self.store, middlewares)
        self._runner: web.AppRunner | None = None
        self._socket: socket.socket | None = None
        self.port = 0
        self._kv_events: KvEventPublisher | None = None

    @property
    def kv_events_endpoint(self) -> str | None:
        """The ZMQ endpoint its KV events are published on, once started (None: none published)."""
        return self._kv_events.endpoint if self._kv_events is not None else None

    @property
    def url(self) -> str:
        """The server's root URL, e.g. `http://127.0.0.1:41234` (append `/v1` for OpenAI clients)."""
        host = self.config.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def records(self) -> list[RequestRecord]:
        """Copies of the records of every request so far, oldest first."""
        return self.book.snapshot()

    async def wait_for(
        self,
        predicate: RecordsPredicate,
        timeout: float = 5.0,  # noqa: ASYNC109 -- the blocking wait_for's signature
    ) -> bool:
        """Wait until `predicate(records)` holds; False if `timeout` seconds pass first."""
        return await self.book.wait_for_async(predicate, timeout)

    def reset(self) -> None:
        """Forget the records, the KV cache, and (Ollama) pulled, deleted and loaded models."""
        self.book.clear()
        self.engine.reset()
        if self.store is not None:
            self.store.reset()

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.host, self.config.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        if self.config.kv_events_endpoint is not None and self.engine.scheduler is not None:
            self._kv_events = KvEventPublisher(self.config.kv_events_endpoint, self.config.kv_events_topic)
            self.engine.scheduler.publish_events_to(self._kv_events)
        runner = web.AppRunner(
            self.app,
            handler_cancellation=True,
            shutdown_timeout=self.config.shutdown_timeout_s,
            access_log=None,
        )
        await runner.setup()
        self._runner = runner
        await web.SockSite(runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.engine.aclose()
        if self._kv_events is not None:
            self._kv_events.close()
            self._kv_events = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None


@contextlib.asynccontextmanager
async def start_simulator(config: SimulatorConfig) -> AsyncIterator[Simulator]:
    """Run a simulator in the current event loop for the duration of the block."""
    simulator = Simulator(config)
    try:
        await simulator.start()
        yield simulator
    finally:
        await simulator.stop()


class SimulatorThread:
    """A simulator on its own event loop in a daemon thread; use as a context manager."""

    def __init__(self, config: SimulatorConfig, start_timeout: float = 10.0) -> None:
        self.config = config
        self._start_timeout = start_timeout
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._simulator: Simulator | None = None
        self._error: BaseException | None = None

    @property
    def simulator(self) -> Simulator:
        if self._simulator is None:
            raise RuntimeError("the simulator is not running")
        return self._simulator

    @property
    def url(self) -> str:
        """The server's root URL, e.g. `http://127.0.0.1:41234` (append `/v1` for OpenAI clients)."""
        return self.simulator.url

    @property
    def port(self) -> int:
        return self.simulator.port

    @property
    def records(self) -> list[RequestRecord]:
        return self.simulator.records

    def wait_for(self, predicate: RecordsPredicate, timeout: float = 5.0) -> bool:
        """Block until `predicate(records)` holds; False if `timeout` seconds pass first."""
        return self.simulator.book.wait_for(predicate, timeout)

    def reset(self) -> None:
        """Forget records and KV-cache state (done on the simulator's own loop)."""
        self._call_in_loop(self.simulator.reset)

    def _call_in_loop(self, function: Callable[[], None]) -> None:
        assert self._loop is not None

        async def call() -> None:
            function()

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=self._start_timeout)

    def start(self) -> SimulatorThread:
        self._thread = threading.Thread(target=self._run, name=f"simulator-{self.config.kind}", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise TimeoutError("the simulator did not start in time")
        if self._error is not None:
            raise RuntimeError("the simulator failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already stopped
                self._loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(timeout=self._start_timeout)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            # Let cancelled handlers and closing transports finish, so every socket is closed.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            for _ in range(3):
                loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        try:
            async with start_simulator(self.config) as simulator:
                self._simulator = simulator
                self._ready.set()
                await self._stop_event.wait()
        except Exception as error:
            self._error = error
        finally:
            self._ready.set()
