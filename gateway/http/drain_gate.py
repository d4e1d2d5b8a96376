"""While the gateway drains (SIGTERM), every request but a probe is refused with 503 `shutting_down`."""

from __future__ import annotations

from collections.abc import Awaitable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.errors import ShuttingDown
from gateway.http.error_sending import send_error
from gateway.http.request_observer import record_of
from gateway.inference.lifecycle import Lifecycle

PROBE_PATHS = frozenset({"/livez", "/readyz", "/health", "/metrics", "/api/metrics"})
"""Answered while draining; everything else is refused then."""


class DrainGate:
    """In front of the app: while the gateway drains, a new request other than a probe gets 503
    `shutting_down` with `Retry-After` and `Connection: close` (the client goes to another instance)."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self._lifecycle = lifecycle

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # The app's own coroutine, not one awaiting it: one frame less kept per request (streams last).
        if self._lifecycle.draining and scope["type"] == ScopeType.HTTP and scope["path"] not in PROBE_PATHS:
            record_of(scope).error = ShuttingDown.code
            return send_error(send, ShuttingDown("The gateway is shutting down; retry on another instance."))
        return self.app(scope, receive, send)
