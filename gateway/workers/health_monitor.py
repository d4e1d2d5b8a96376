"""The background control plane: active health checks, load scrapes and DNS discovery, on an interval.

Never on the request path: requests read the state this leaves in the worker pool. The calls to
workers go through `gateway.workers.control_client`, with each worker's own API key where it has one.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway.errors import GatewayError, StoreUnavailable
from gateway.workers.active_catalog import ActiveCatalog, CatalogHolder
from gateway.workers.control_client import ControlClient
from gateway.workers.dns_discovery import resolve_members
from gateway.workers.load_scrape import llama_cpp_load, ollama_load, parse_vllm_metrics
from gateway.workers.overlay import OverlayStore
from gateway.workers.pool import ScrapedLoad, WorkerState
from routing.catalog import CatalogError, WorkerSpec

_log = structlog.get_logger("gateway.health")


class HealthMonitor:
    def __init__(self, runtimes: CatalogHolder, control: ControlClient, overlays: OverlayStore | None = None) -> None:
        self._runtimes = runtimes
        self._control = control
        self._overlays = overlays
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="health-monitor")
        self._runtimes.on_swap(lambda _runtime: self._wake.set())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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

    async def check_once(self, runtime: ActiveCatalog) -> None:
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

    async def _discover(self, runtime: ActiveCatalog) -> None:
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

    async def _check(self, runtime: ActiveCatalog, state: WorkerState) -> None:
        spec = runtime.catalog.health
        ok = await self._control.answers_health_check(state.spec, spec.timeout)
        was_down = state.name in runtime.pool.health.down()
        healthy = runtime.pool.health.record(state.name, ok)
        if healthy == was_down:
            _log.warning("worker_health_changed", worker=state.name, healthy=healthy)
        if ok and spec.scrape_load:
            await self._scrape(runtime, state, spec.timeout)

    async def _scrape(self, runtime: ActiveCatalog, state: WorkerState, limit_s: float) -> None:
        in_flight_before = state.in_flight  # our share of what the worker will report (see `record_load`)
        try:
            load = await self._read_load(state.spec, limit_s)
        except (GatewayError, ValueError) as exc:  # ValueError: Prometheus text that does not parse
            _log.debug("load_scrape_failed", worker=state.name, error=repr(exc))
            return
        if load is not None:
            runtime.pool.record_load(state, load, asyncio.get_running_loop().time(), in_flight_before)

    async def _read_load(self, worker: WorkerSpec, limit_s: float) -> ScrapedLoad | None:
        if worker.kind == "vllm":
            return parse_vllm_metrics(await self._control.prometheus_metrics(worker, limit_s))
        if worker.kind in ("llamacpp", "local"):
            return await self._llama_cpp_load(worker, limit_s)
        if worker.kind == "ollama":
            loaded = await self._control.ollama_loaded(worker, limit_s)
            present: list[str] | None
            try:
                present = list(await self._control.ollama_present(worker, limit_s))
            except GatewayError:  # what is loaded still counts
                present = None
            return ollama_load(loaded, present)
        return None

    async def _llama_cpp_load(self, worker: WorkerSpec, limit_s: float) -> ScrapedLoad:
        """llama-server's `/metrics` and `/slots`, read together; one that fails (not enabled) is left out."""
        metrics, slots = await asyncio.gather(self._control.prometheus_metrics(worker, limit_s),
                                              self._control.llama_cpp_slots(worker, limit_s), return_exceptions=True)
        if isinstance(metrics, BaseException) and isinstance(slots, BaseException):
            raise metrics
        return llama_cpp_load(None if isinstance(metrics, BaseException) else metrics,
                              None if isinstance(slots, BaseException) else slots)
