"""Operator endpoints under /admin: admin keys only (in open mode, loopback clients only)."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler

from gateway.auth.authenticator import Authenticator
from gateway.errors import InvalidRequest
from gateway.http.callers import admin_of
from gateway.workers.active_catalog import CatalogHolder
from gateway.workers.catalog_reload import reload_logged


def reload_catalog(runtimes: CatalogHolder) -> dict[str, Any]:
    """Reload the catalog file (400 naming the problems when it is not valid: the old one stays)."""
    if runtimes.source is None:
        raise InvalidRequest("This gateway was not started from a catalog file.")
    problems = reload_logged(runtimes)
    if problems:
        raise InvalidRequest("The catalog was not reloaded: " + "; ".join(problems), code="invalid_catalog")
    catalog = runtimes.current.catalog
    return {"reloaded": True, "source": runtimes.source, "models": [m.name for m in catalog.models],
            "workers": [w.name for w in catalog.workers]}


def admin_routes(runtimes: CatalogHolder, authenticator: Authenticator) -> list[HTTPRouteHandler]:
    @post("/admin/reload", status_code=200, summary="Reload the catalog file")
    async def reload(request: Request[Any, Any, Any]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return reload_catalog(runtimes)

    return [reload]
