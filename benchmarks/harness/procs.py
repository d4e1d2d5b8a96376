"""Child processes of a benchmark run: start and stop, readiness (their CPU and memory: proc_stats.py).

Every child gets its own session (process group), so stopping it also stops whatever it forked
(granian's workers, a gateway's worker pool), and a Ctrl-C in the terminal reaches only the runner,
which then stops the children itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import httpx


class Child:
    """A started process (and its process group) whose output goes to a log file."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def exited(self) -> bool:
        return self.proc.returncode is not None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    async def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace_s`, then reap the leader."""
        if not self.exited:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                self._signal_group(signal.SIGKILL)
                await asyncio.wait_for(self.proc.wait(), grace_s)
        # Whatever the leader left behind in its group (workers that ignored SIGTERM).
        self._signal_group(signal.SIGKILL)


async def start(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    log = await asyncio.to_thread(log_path.open, "ab")
    with log:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return Child(name, proc, log_path)


async def start_ready(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    ready_url: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> Child:
    """`start`, then `wait_until_ready(ready_url)`; a child that never gets ready (or whose wait is
    cancelled) is stopped before the error goes on."""
    child = await start(name, argv, log_path, env=env, cwd=cwd)
    try:
        await wait_until_ready(child, ready_url, headers=headers, timeout_s=timeout_s)
    except BaseException:
        await child.stop()
        raise
    return child


async def start_together(starting: Sequence[Awaitable[Child]]) -> list[Child]:
    """Await every start at once; if one fails, the children that did start are stopped before its
    error goes on."""
    results = await asyncio.gather(*starting, return_exceptions=True)
    children = [result for result in results if isinstance(result, Child)]
    failure = next((result for result in results if isinstance(result, BaseException)), None)
    if failure is not None:
        await asyncio.gather(*(child.stop() for child in children), return_exceptions=True)
        raise failure
    return children


async def stop_or_say(child: Child, say: Callable[[str], None]) -> None:
    """Stop `child`; a failure is said, not raised, so that the caller goes on stopping the others."""
    try:
        await child.stop()
    except Exception as exc:
        say(f"could not stop {child.name} (pid {child.pid}): {exc}")


async def wait_until_ready(
    child: Child,
    url: str,
    *,
    method: str = "GET",
    json_body: object = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> httpx.Response:
    """Poll `url` until it answers 200; fail early, with the log's tail, if the child exits."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        while True:
            if child.exited:
                raise RuntimeError(
                    f"{child.name} exited with status {child.proc.returncode} before {url} answered:\n"
                    f"{child.log_tail()}"
                )
            try:
                response = await client.request(method, url, json=json_body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return response
                last = f"HTTP {response.status_code}: {response.text[:500]}"
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{child.name}: {method} {url} not ready after {timeout_s:.0f} s ({last})\n{child.log_tail()}"
                )
            await asyncio.sleep(0.1)
