"""The one place where errors become responses: every error a client sees is the OpenAI error object
with the right status. Framework errors (unknown route, wrong method, oversize body) and unexpected
exceptions are mapped onto `gateway.errors` first; nothing else reaches the client, no stack trace."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import Scope

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from gateway.http.request_observer import record_of

_encode = msgspec.json.Encoder().encode
_log = structlog.get_logger("gateway.errors")


def as_gateway_error(exc: Exception) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, HTTPException):
        status = exc.status_code
        mapped: GatewayError
        if status == 404:
            mapped = NotFound("Unknown request URL. Please check the URL and method of your request.",
                              code="unknown_url")
        elif status == 405:
            mapped = MethodNotAllowed("This method is not allowed on this URL.")
        elif status == 413:
            mapped = PayloadTooLarge("The request body is larger than the gateway accepts.")
        elif 400 <= status < 500:
            mapped = InvalidRequest(str(exc.detail) or "Invalid request.")
        else:
            mapped = GatewayError("The gateway failed to handle the request.")
        mapped.headers.update({k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"})
        return mapped
    return GatewayError("The gateway failed to handle the request.")


def error_response(error: GatewayError, error_object: dict[str, Any] | None = None) -> Response[bytes]:
    """`error` as a response: its OpenAI error object, or `error_object` (a surface's own shape)."""
    return Response(content=_encode(error.body() if error_object is None else error_object),
                    status_code=error.status_code(), media_type="application/json", headers=error.headers or None)


def error_for(exc: Exception, scope: Scope) -> GatewayError:
    """The client's error for `exc`, noted on the request's record (unexpected ones are logged)."""
    error = as_gateway_error(exc)
    record_of(scope).error = error.error_code
    if not isinstance(exc, GatewayError | HTTPException):
        _log.error("unhandled_exception", path=scope["path"], exc_info=exc)
    return error


ErrorShape = Callable[[GatewayError], dict[str, Any]]
"""How one API surface shapes an error (`Surface.error_body`)."""
ExceptionHandler = Callable[[Request[Any, Any, Any], Exception], Response[bytes]]


def exception_handler(shapes: Mapping[str, ErrorShape]) -> ExceptionHandler:
    """litestar's exception handler: the error in the shape of the API surface whose path was asked (`shapes`:
    path to shape; a wrong method on `/v1/messages` gets Anthropic's error), else OpenAI's."""

    def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        error = error_for(exc, request.scope)
        shape = shapes.get(request.scope["path"])
        return error_response(error, None if shape is None else shape(error))

    return handle_exception
