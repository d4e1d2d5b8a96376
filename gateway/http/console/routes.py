"""The console as one litestar Router at `/console`: off (404) without an admin key, security headers on
every answer, its pages and its JSON API (`gateway.http.console.pages`, `admin_api`, `data_api`)."""

from __future__ import annotations

from typing import Any

from litestar import Response, Router

from gateway.auth import KeyStore, UsageStore
from gateway.auth.authenticator import Authenticator
from gateway.capture.interactions import InteractionCapture
from gateway.http.console.admin_api import key_routes, playground_routes
from gateway.http.console.data_api import capture_routes, overview_routes
from gateway.http.console.guard import AnyRequest, ConsoleGuard
from gateway.http.console.metrics_window import MetricsWindow
from gateway.http.console.pages import SECURITY_HEADERS, page_routes
from gateway.http.console.session import SessionSigner
from gateway.http.console.workers_api import worker_routes
from gateway.http.routes.worker_operations import WorkerOperations
from gateway.limits import LimitStore
from gateway.observability.metrics import GatewayMetrics
from gateway.workers.active_catalog import CatalogHolder
from gateway.workers.control_client import ControlClient
from gateway.workers.overlay import OverlayStore

SESSION_HOURS = 8.0


async def _secure(response: Response[Any]) -> Response[Any]:
    response.headers.update(SECURITY_HEADERS)
    return response


def console_router(*, authenticator: Authenticator, keys: KeyStore, limits: LimitStore, usage: UsageStore,
                   runtimes: CatalogHolder, overlays: OverlayStore, control: ControlClient, capture: InteractionCapture,
                   metrics: GatewayMetrics, secret: str = "", session_hours: float = SESSION_HOURS) -> Router:
    """`secret`: GATEWAY_CONSOLE_SECRET (see `gateway.http.console.session` for why it may be empty)."""
    guard = ConsoleGuard(authenticator, SessionSigner(secret, session_hours * 3600))
    handlers = [*page_routes(guard), *key_routes(guard, keys, limits, authenticator, usage),
                *worker_routes(guard, WorkerOperations(runtimes, overlays, control)),
                *playground_routes(guard, runtimes),
                *overview_routes(guard, MetricsWindow(metrics.registry), runtimes),
                *capture_routes(guard, capture)]

    async def require_enabled(request: AnyRequest) -> None:
        # a function, not the bound method: litestar deep-copies a router's hooks, and the guard holds stores
        await guard.require_enabled(request)

    return Router(path="/console", route_handlers=handlers, before_request=require_enabled,
                  after_request=_secure, include_in_schema=False)
