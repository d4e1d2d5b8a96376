"""Hot reload triggers: `SIGHUP`, and a change of the catalog file (polled, so it works on every
filesystem and with Kubernetes ConfigMap symlink swaps). `POST /admin/reload` is the third."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import structlog

from gateway.workers.active_catalog import CatalogHolder
from routing.catalog import CatalogError

_log = structlog.get_logger("gateway.workers.catalog_reload")


def _fingerprint(path: str) -> tuple[float, int] | None:
    try:
        stat = os.stat(path)  # follows symlinks: a swapped ConfigMap target counts as a change
    except OSError:
        return None
    return (stat.st_mtime, stat.st_size)


def reload_logged(runtimes: CatalogHolder) -> list[str]:
    """Reload the catalog; return its problems (empty when it was swapped in)."""
    try:
        runtimes.reload()
    except CatalogError as exc:
        _log.error("catalog_reload_rejected", source=runtimes.source, problems=exc.problems)
        return exc.problems
    return []


class CatalogWatcher:
    def __init__(self, runtimes: CatalogHolder, poll_interval: float = 2.0) -> None:
        self._runtimes = runtimes
        self._poll_interval = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._signal_installed = False

    async def start(self) -> None:
        if self._runtimes.source is None:
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signal.SIGHUP, lambda: reload_logged(self._runtimes))
            self._signal_installed = True
        self._task = asyncio.create_task(self._poll(self._runtimes.source), name="catalog-watch")

    async def stop(self) -> None:
        if self._signal_installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self, path: str) -> None:
        seen = _fingerprint(path)
        while True:
            await asyncio.sleep(self._poll_interval)
            now = _fingerprint(path)
            if now is not None and now != seen:
                seen = now
                reload_logged(self._runtimes)
