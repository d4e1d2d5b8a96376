"""Real servers on loopback for tests: an ASGI app under uvicorn in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

import uvicorn
from litestar.types import ASGIApp


class ServerThread:
    """Runs an ASGI app under uvicorn (httptools) on 127.0.0.1 on a free port, in a daemon thread."""

    def __init__(self, app: ASGIApp) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, loop="asyncio", http="httptools",
                                lifespan="on", access_log=False, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True, name="test-server")
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self._server.serve()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        ready = threading.Event()
        while not ready.wait(0.01):
            if self._server.started:
                ready.set()
            elif not self._thread.is_alive():
                raise RuntimeError("the test server failed to start")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
