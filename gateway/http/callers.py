"""Who is calling, for handlers: every route but the health probes identifies its caller first."""

from __future__ import annotations

from typing import Any

from litestar import Request

from gateway.auth.authenticator import Authenticator, Caller
from gateway.errors import PermissionDenied
from gateway.http.request_observer import record_of


async def caller_of(request: Request[Any, Any, Any], authenticator: Authenticator) -> Caller:
    client = request.client
    caller = await authenticator.identify(request.headers, client.host if client else None)
    if caller.key is not None:
        record_of(request.scope).key_id = caller.key.id
    return caller


async def admin_of(request: Request[Any, Any, Any], authenticator: Authenticator) -> Caller:
    caller = await caller_of(request, authenticator)
    if not caller.is_admin:
        message = ("This route needs an admin key." if not authenticator.open_mode
                   else "Without API keys configured, admin routes answer loopback clients only.")
        raise PermissionDenied(message, code="admin_required")
    return caller
