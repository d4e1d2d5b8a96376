"""Probes and metrics: `/` (what answers here), `/livez`, `/readyz`, `/health` (the UpCoach shape),
`/metrics` (Prometheus) and `/api/metrics` (the UpCoach JSON counters). No key needed: they say nothing about callers.

While the gateway drains (SIGTERM), they still answer (`/readyz` with 503); `gateway.http.drain_gate`
refuses every other request with 503 `shutting_down`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get, head
from litestar.handlers import HTTPRouteHandler

from gateway.errors import GatewayError
from gateway.http.request_observer import record_of
from gateway.inference.lifecycle import Lifecycle
from gateway.observability.metrics import GatewayMetrics
from gateway.workers.active_catalog import CatalogHolder


def _quiet(request: Request[Any, Any, Any], endpoint: str) -> None:
    record = record_of(request.scope)
    record.endpoint, record.quiet = endpoint, True


def health_routes(runtimes: CatalogHolder, metrics: GatewayMetrics, lifecycle: Lifecycle,
                  redis_ping: Callable[[], Awaitable[None]] | None) -> list[HTTPRouteHandler]:
    async def redis_ok() -> bool | None:
        if redis_ping is None:
            return None
        try:
            await asyncio.wait_for(redis_ping(), 1.0)
        except (GatewayError, TimeoutError, OSError):
            return False
        return True

    def worker_states() -> dict[str, bool]:
        pool = runtimes.current.pool
        down = pool.health.down()
        return {name: name not in down for name in pool.workers}

    @get("/", summary="What answers here (clients such as Claude Code probe the root with HEAD)")
    async def root(request: Request[Any, Any, Any]) -> dict[str, str]:
        _quiet(request, "root")
        return {"name": "llm-gateway", "api": "/v1", "schema": "/schema"}

    @head("/", summary="The gateway answers here")
    async def root_probe(request: Request[Any, Any, Any]) -> None:
        _quiet(request, "root")

    @get("/livez", summary="The process is alive")
    async def livez(request: Request[Any, Any, Any]) -> dict[str, str]:
        _quiet(request, "livez")
        return {"status": "alive"}

    @get("/readyz", summary="Ready for traffic: catalog loaded, a worker per required model, Redis reachable")
    async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        _quiet(request, "readyz")
        problems = []
        if lifecycle.draining:
            problems.append("draining: shutting down")
        runtime = runtimes.current
        up = worker_states()
        for model in runtime.catalog.models:
            if model.required and not any(up.get(p.name) for p in runtime.pool.placements(model.name)):
                problems.append(f"no healthy worker for required model {model.name!r}")
        if await redis_ok() is False:
            problems.append("redis unreachable")
        body = {"status": "ready" if not problems else "not ready", "problems": problems}
        return Response(body, status_code=200 if not problems else 503)

    @get("/health", summary="Per-service health, in the UpCoach shape")
    async def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
        _quiet(request, "health")
        services = {name: "healthy" if ok else "unhealthy" for name, ok in worker_states().items()}
        redis = await redis_ok()
        if redis is not None:
            services["redis"] = "healthy" if redis else "unhealthy"
        status = "ok" if all(v == "healthy" for v in services.values()) and not lifecycle.draining else "degraded"
        return {"status": status, "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"), "services": services}

    @get("/metrics", summary="Prometheus metrics", media_type="text/plain; version=0.0.4; charset=utf-8")
    async def prometheus(request: Request[Any, Any, Any]) -> bytes:
        _quiet(request, "metrics")
        return metrics.exposition()

    @get("/api/metrics", summary="The UpCoach JSON counters")
    async def seed_metrics(request: Request[Any, Any, Any]) -> dict[str, int]:
        _quiet(request, "api_metrics")
        seed = metrics.seed
        return {"requests_total": seed.requests_total, "cache_hits": seed.cache_hits,
                "cache_misses": seed.cache_misses, "errors_total": seed.errors_total,
                "active_connections": seed.active_connections}

    return [root, root_probe, livez, readyz, health, prometheus, seed_metrics]
