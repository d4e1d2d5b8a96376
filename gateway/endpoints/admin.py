"""Operator endpoints under /admin. Until API keys exist they answer loopback clients only."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler

from gateway.catalog_watch import reload_logged
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.runtime import RuntimeHolder

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _require_operator(request: Request[Any, Any, Any]) -> None:
    client = request.client
    if client is None or client.host not in _LOOPBACK:
        raise PermissionDenied("Admin endpoints answer only loopback clients until API keys are configured.")


def admin_routes(runtimes: RuntimeHolder) -> list[HTTPRouteHandler]:
    @post("/admin/reload", status_code=200, summary="Reload the catalog file")
    async def reload_catalog(request: Request[Any, Any, Any]) -> dict[str, Any]:
        _require_operator(request)
        if runtimes.source is None:
            raise InvalidRequest("This gateway was not started from a catalog file.")
        problems = reload_logged(runtimes)
        if problems:
            raise InvalidRequest("The catalog was not reloaded: " + "; ".join(problems), code="invalid_catalog")
        catalog = runtimes.current.catalog
        return {"reloaded": True, "source": runtimes.source, "models": [m.name for m in catalog.models],
                "workers": [w.name for w in catalog.workers]}

    @get("/admin/workers", summary="Workers, their health, ejections and load")
    async def workers(request: Request[Any, Any, Any]) -> dict[str, Any]:
        _require_operator(request)
        return {"workers": runtimes.current.pool.status(asyncio.get_running_loop().time())}

    return [reload_catalog, workers]
