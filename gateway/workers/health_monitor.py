"""The background control plane: active health checks, load scrapes and DNS discovery, on an interval.

Never on the request path: requests read the state this leaves in the worker pool. Uses httpx (the
control plane), with each worker's own API key where it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import httpx
import structlog

from gateway.errors import StoreUnavailable
from gateway.workers.active_catalog import Runtime, RuntimeHolder
from gateway.workers.dns_discovery import resolve_members
from gateway.workers.load_scrape import parse_ollama_ps, parse_vllm_metrics
from gateway.workers.overlay import OverlayStore
from gateway.workers.pool import WorkerState
from routing.catalog import CatalogError

_log = structlog.get_logger("gateway.health")


def _root(url: str) -> str:
    return url[:-3] if url.endswith("/v1") else url


def health_url(state: WorkerState) -> str:
    """vLLM `GET /health`, Ollama `GET /`, other OpenAI-compatible servers `GET /v1/models`."""
    url = state.spec.url
    if state.spec.kind == "vllm":
        return _root(url) + "/health"
    if state.spec.kind == "ollama":
        return _root(url) + "/"
    return url + "/models"


class HealthMonitor:
    def __init__(self, runtimes: RuntimeHolder, overlays: OverlayStore | None = None) -> None:
        self._runtimes = runtimes
        self._overlays = overlays
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self._client = httpx.AsyncClient()
        self._task = asyncio.create_task(self._run(), name="health-monitor")
        self._runtimes.on_swap(lambda _runtime: self._wake.set())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        while True:
            runtime = self._runtimes.current
            try:
                await self.check_once(runtime)
            except Exception as exc:  # the monitor must outlive any one bad round
                _log.error("health_round_failed", error=repr(exc))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), runtime.catalog.health.interval)

    async def check_once(self, runtime: Runtime) -> None:
        await self._follow_overlay()
        runtime = self._runtimes.current
        await self._discover(runtime)
        await asyncio.gather(*(self._check(runtime, state) for state in list(runtime.pool.workers.values())))

    async def _follow_overlay(self) -> None:
        """Apply the runtime worker changes other replicas made."""
        if self._overlays is None:
            return
        try:
            if self._runtimes.set_overlay(await self._overlays.get()):
                _log.info("worker_overlay_applied", version=self._runtimes.overlay.version)
        except (StoreUnavailable, CatalogError) as exc:
            _log.warning("worker_overlay_not_applied", error=str(exc))

    async def _discover(self, runtime: Runtime) -> None:
        for spec in runtime.pool.catalog_workers():
            if spec.discovery != "dns":
                continue
            try:
                members = await resolve_members(spec)
            except OSError as exc:
                _log.warning("dns_discovery_failed", worker=spec.name, error=str(exc))
                continue
            if members and runtime.pool.set_members(spec.name, members):
                _log.info("dns_members_changed", worker=spec.name, members=[m.name for m in members])

    async def _check(self, runtime: Runtime, state: WorkerState) -> None:
        assert self._client is not None
        spec = runtime.catalog.health
        headers = {"Authorization": state.target.auth_header} if state.target.auth_header else {}
        try:
            response = await self._client.get(health_url(state), headers=headers, timeout=spec.timeout)
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        was_down = state.name in runtime.pool.health.down()
        healthy = runtime.pool.health.record(state.name, ok)
        if healthy == was_down:
            _log.warning("worker_health_changed", worker=state.name, healthy=healthy)
        if ok and spec.scrape_load:
            await self._scrape(runtime, state, headers, spec.timeout)

    async def _scrape(self, runtime: Runtime, state: WorkerState, headers: dict[str, str],
                      limit_s: float) -> None:
        assert self._client is not None
        try:
            if state.spec.kind == "vllm":
                response = await self._client.get(_root(state.spec.url) + "/metrics", headers=headers,
                                                  timeout=limit_s)
                if response.status_code == 200:
                    runtime.pool.record_load(state, parse_vllm_metrics(response.text))
            elif state.spec.kind == "ollama":
                response = await self._client.get(_root(state.spec.url) + "/api/ps", timeout=limit_s)
                tags = await self._client.get(_root(state.spec.url) + "/api/tags", timeout=limit_s)
                if response.status_code == 200:
                    load = parse_ollama_ps(response.json())
                    if tags.status_code == 200:
                        present = parse_ollama_ps(tags.json()).resident_models
                        load = dataclasses.replace(load, present_models=present)
                    runtime.pool.record_load(state, load)
        except (httpx.HTTPError, ValueError) as exc:
            _log.debug("load_scrape_failed", worker=state.name, error=repr(exc))
