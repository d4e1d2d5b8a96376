"""Starting and supervising the catalog's `local` workers (llama.cpp's `llama-server`).

`llm-gateway serve` starts each as a child process (`child_process`: in a session of its own, dying with
the gateway), once its port on 127.0.0.1 is free (else an error naming what holds it: `port_holder`);
waits until it answers its health check (polled through the control-plane client); restarts one that
dies (again and again until it is ready, with a pause that doubles from 1 s up to 30 s: tenacity's retry
loops); and stops them all on shutdown. Once shutdown has begun (the stop signal, or `stop`), nothing is
started again: a worker that exits stays down and a restart under way is abandoned, its process stopped.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
)

from gateway.workers.child_process import start_child, stop_child
from gateway.workers.control_client import ControlClient
from gateway.workers.local_commands import LocalWorkerError, command_for, llama_server_binary
from gateway.workers.port_holder import port_in_use
from routing.catalog import WorkerSpec

_log = structlog.get_logger("gateway.workers.local_processes")


class _NotReadyYet(Exception):
    """The worker does not answer yet (asked again until its startup timeout)."""


class _Stopping(Exception):
    """Shutdown has begun: the worker is not started again (a start or restart under way gives up)."""


class _Child:
    def __init__(self, worker: WorkerSpec, binary: Path, stopping: Callable[[], bool]) -> None:
        self.worker = worker
        self.command = command_for(worker, binary)
        self.log_path = Path(tempfile.gettempdir()) / f"llm-gateway-{worker.name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self._stopping = stopping

    @property
    def pid(self) -> int | None:
        """Its process id while it runs, else None."""
        return self.process.pid if self.process and self.process.returncode is None else None

    def _raise_if_stopping(self) -> None:
        if self._stopping():
            raise _Stopping

    async def spawn(self) -> None:
        """Start the worker, once its port is free: a busy port is an error naming its holder (a worker
        that cannot bind would otherwise look ready whenever the other server answers the health check)."""
        assert self.worker.local is not None
        self._raise_if_stopping()
        busy = await asyncio.to_thread(port_in_use, "127.0.0.1", self.worker.local.port)
        if busy:
            raise LocalWorkerError(f"local worker {self.worker.name!r}: {busy}")
        self._raise_if_stopping()
        with self.log_path.open("ab") as log:
            starting = asyncio.ensure_future(start_child(self.command, log))
            try:
                self.process = await asyncio.shield(starting)
            except asyncio.CancelledError:
                self.process = await starting  # it starts all the same: keep it, so that stop() stops it
                raise

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_ready(self, control: ControlClient) -> None:
        """Poll until the worker answers; LocalWorkerError if it exits or is not ready in time."""
        assert self.worker.local is not None
        polls = AsyncRetrying(stop=stop_after_delay(self.worker.local.startup_timeout), wait=wait_fixed(0.25),
                              retry=retry_if_exception_type(_NotReadyYet))
        try:
            async for attempt in polls:
                with attempt:
                    self._raise_if_stopping()
                    self._raise_if_exited()
                    if not await control.answers_health_check(self.worker, 2.0):
                        raise _NotReadyYet
        except RetryError:
            raise LocalWorkerError(f"local worker {self.worker.name!r} was not ready within "
                                   f"{self.worker.local.startup_timeout:g} s (log: {self.log_path})") from None

    def _raise_if_exited(self) -> None:
        assert self.process is not None
        if self.process.returncode is not None:
            raise LocalWorkerError(f"local worker {self.worker.name!r} exited with code "
                                   f"{self.process.returncode}:\n{self.log_tail()}")

    async def restart(self, control: ControlClient) -> None:
        """Start the worker again until it is ready: after 1 s, then 2, 4 … up to 30 s between tries.
        `_Stopping` once shutdown has begun, the process of the try under way stopped."""
        await asyncio.sleep(1.0)
        tries = AsyncRetrying(wait=wait_exponential(multiplier=2, max=30), before_sleep=self._log_failed_restart,
                              retry=retry_if_exception_type(LocalWorkerError))
        try:
            async for attempt in tries:
                with attempt:
                    await self.stop()  # one that started but never became ready
                    await self.spawn()
                    await self.wait_ready(control)
        except _Stopping:
            await self.stop()
            raise

    def _log_failed_restart(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        _log.error("local_worker_restart_failed", worker=self.worker.name, error=str(error),
                   restart_in_s=state.upcoming_sleep)

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        await stop_child(process)
        _log.info("local_worker_stopped", worker=self.worker.name, pid=process.pid, code=process.returncode)


class LocalWorkerSupervisor:
    def __init__(self, workers: list[WorkerSpec], server_binary: str | None = None) -> None:
        """`server_binary`: GATEWAY_LLAMA_SERVER (`local_commands.llama_server_binary`); looked for only when
        there are local workers. Raises LocalWorkerError when there is none to run."""
        self._stopping = False
        binary = llama_server_binary(server_binary) if workers else None
        self._children = [_Child(w, binary, lambda: self._stopping) for w in workers if binary is not None]
        self._control: ControlClient | None = None
        self._monitors: list[asyncio.Task[None]] = []
        self._thread: threading.Thread | None = None
        self._thread_stop: asyncio.Event | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    def pids(self) -> dict[str, int | None]:
        """The process id of each local worker now (None while it is down)."""
        return {c.worker.name: c.pid for c in self._children}

    def begin_stopping(self) -> None:
        """Shutdown has begun (the stop signal): from now on no worker is started again. Safe from any
        thread; `stop` stops them."""
        self._stopping = True

    async def start(self) -> None:
        control = self._control = ControlClient({})  # the gateway starts its local workers without a key
        try:
            for child in self._children:
                _log.info("local_worker_starting", worker=child.worker.name, port=child.worker.local.port
                          if child.worker.local else None, log=str(child.log_path))
                await child.spawn()
            await asyncio.gather(*(child.wait_ready(control) for child in self._children))
        except BaseException:
            await self.stop()
            raise
        for child in self._children:
            _log.info("local_worker_ready", worker=child.worker.name, url=child.worker.url, pid=child.pid)
            self._monitors.append(asyncio.create_task(self._keep_alive(child, control)))

    async def _keep_alive(self, child: _Child, control: ControlClient) -> None:
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping:
                _log.info("local_worker_exited", worker=child.worker.name, code=code, restart_in_s=None)
                return
            _log.warning("local_worker_exited", worker=child.worker.name, code=code, restart_in_s=1.0)
            try:
                await child.restart(control)
            except _Stopping:
                return
            _log.info("local_worker_ready", worker=child.worker.name, url=child.worker.url, pid=child.pid)

    async def stop(self) -> None:
        """Stop every worker for good: nothing is started again, a restart under way is abandoned, and
        each process gets SIGTERM, then SIGKILL after `child_process.STOP_GRACE_S`."""
        self._stopping = True
        for monitor in self._monitors:
            monitor.cancel()
        await asyncio.gather(*self._monitors, return_exceptions=True)
        self._monitors.clear()
        await asyncio.gather(*(child.stop() for child in self._children))
        if self._control is not None:
            await self._control.aclose()
            self._control = None

    def start_in_thread(self) -> None:
        """Supervise from a thread of its own (when the server runs several processes)."""
        if not self._children:
            return
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            async def main() -> None:
                self._thread_stop = asyncio.Event()
                self._thread_loop = asyncio.get_running_loop()
                try:
                    await self.start()
                except BaseException as exc:
                    failure.append(exc)
                    started.set()
                    return
                started.set()
                await self._thread_stop.wait()
                await self.stop()

            asyncio.run(main())

        self._thread = threading.Thread(target=run, name="local-workers", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]

    def stop_thread(self) -> None:
        self._stopping = True
        if self._thread is None or self._thread_loop is None or self._thread_stop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_stop.set)
        self._thread.join(timeout=20)
