"""The gateway's one error tree. Every error a client sees is one of these, turned into the OpenAI
error object (`{"error": {"message", "type", "param", "code"}}`) in exactly one place
(`gateway.app.factory`'s exception handler, through `error_body`).

    GatewayError                     500 server_error
    ├── InvalidRequest               400 invalid_request_error  (bad JSON, bad fields: `param` says which)
    │   ├── PayloadTooLarge          413
    │   └── HeadersTooLarge          431
    ├── AuthenticationFailed         401 authentication_error
    ├── PermissionDenied             403 permission_error
    ├── NotFound                     404 not_found_error        (unknown route)
    │   └── ModelNotFound            404                        (unknown model, `param` = "model")
    ├── MethodNotAllowed             405 invalid_request_error
    ├── RateLimited                  429 rate_limit_exceeded
    ├── ClientDisconnected           499 (logged only: the client is gone)
    ├── StoreUnavailable             503 server_error           (shared state (Redis) cannot answer:
    │                                                            code store_unavailable, `Retry-After`)
    ├── Overloaded                   503 server_error           (every worker of the model is full and its
    │                                                            queue too, or the wait ran out: codes
    │                                                            queue_full, queue_timeout; `Retry-After`)
    ├── ShuttingDown                 503 server_error           (draining after SIGTERM: new requests, and
    │                                                            what is left at the drain deadline;
    │                                                            code shutting_down, `Retry-After`)
    └── UpstreamError                502 api_error              (retryable: the worker failed us)
        ├── WorkerUnreachable        502                        (connect refused, reset before a response)
        ├── NoWorkerAvailable        503                        (no worker serves the model right now)
        ├── UpstreamTimeout          504                        (connect, first byte or deadline expired)
        └── WorkerRejected           the worker's own 4xx/5xx, normalized (vLLM's integer codes,
                                     Ollama's {"error": "..."}, {"error": "Unauthorized"})

`retryable` tells the forwarder whether another worker may be tried (before the first byte only).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import msgspec


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.error_code = code if code is not None else self.code
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.error_code}}

    def status_code(self) -> int:
        return self.status


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Untranslatable(InvalidRequest):
    """A field a translating surface cannot carry into chat completions: the client's 400 when the request
    must be translated, but no fault for a worker that serves the surface natively."""


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class HeadersTooLarge(InvalidRequest):
    status = 431
    code = "headers_too_large"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(GatewayError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"


class ClientDisconnected(GatewayError):
    status = 499
    type = "client_closed_request"
    code = "client_closed_request"


class StoreUnavailable(GatewayError):
    """The shared state store (Redis: keys, limits) did not answer in time or refused the connection.
    Raised by the stores in place of the library's errors; fail-closed limits turn it into a 503."""

    status = 503
    type = "server_error"
    code = "store_unavailable"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))


class Overloaded(GatewayError):
    """Every worker of the model is at its `max_concurrent` and the model's queue is full (`queue_full`),
    or the request waited the queue's `max_wait` for a slot (`queue_timeout`)."""

    status = 503
    type = "server_error"
    code = "queue_full"

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: float = 1.0) -> None:
        super().__init__(message, code=code)
        self.headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))


class ShuttingDown(GatewayError):
    """The gateway is draining (SIGTERM): a new request is refused and its connection closed; a request or
    stream still running at the drain deadline ends with this error."""

    status = 503
    type = "server_error"
    code = "shutting_down"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers.update({"Retry-After": "1", "Connection": "close"})


class UpstreamError(GatewayError):
    status = 502
    type = "api_error"
    code = "upstream_error"
    retryable = True


class WorkerUnreachable(UpstreamError):
    code = "worker_unreachable"


class NoWorkerAvailable(UpstreamError):
    status = 503
    code = "no_worker_available"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class WorkerRejected(UpstreamError):
    """The worker answered with an error status; its body is normalized to the OpenAI shape."""

    def __init__(self, status: int, message: str, *, type_: str, param: str | None, code: str | None):
        super().__init__(message, param=param, code=code)
        self._status = status
        self._type = type_

    def status_code(self) -> int:
        return self._status

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self._type, "param": self.param,
                          "code": self.error_code}}

    @property
    def is_retryable(self) -> bool:
        # A full or failing worker (5xx, 429) may succeed elsewhere; a 4xx about the request will not.
        return self._status >= 500 or self._status == 429


def is_retryable(exc: GatewayError) -> bool:
    if isinstance(exc, WorkerRejected):
        return exc.is_retryable
    return exc.retryable


_TYPE_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 409: "invalid_request_error", 413: "invalid_request_error",
                   422: "invalid_request_error", 429: "rate_limit_exceeded"}


def worker_error(status: int, raw: bytes) -> WorkerRejected:
    """Normalize a worker's error body (OpenAI, vLLM, Ollama or plain text) to our shape. A redirect (3xx,
    never followed) is a 502: the worker did not answer."""
    if status < 400:
        return WorkerRejected(502, f"worker answered HTTP {status} (the gateway does not follow redirects)",
                              type_="api_error", param=None, code="upstream_redirect")
    default_type = _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")
    message, param, code, type_ = f"worker returned HTTP {status}", None, None, default_type
    try:
        data = msgspec.json.decode(raw) if raw else None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for invalid UTF-8
        data = None
        text = raw.decode("utf-8", "replace").strip()
        if text:
            message = text[:500]
    error = data.get("error", data) if isinstance(data, dict) else None
    if isinstance(error, str):  # Ollama and `--api-key` failures: {"error": "text"}
        message = error
    elif isinstance(error, dict):
        message = str(error.get("message") or error.get("detail") or message)
        param = _str_or_none(error.get("param"))
        code = _str_or_none(error.get("code"))
        upstream_type = error.get("type")
        # vLLM sends class-like names (`BadRequestError`); OpenAI's snake_case types pass unchanged.
        if isinstance(upstream_type, str) and upstream_type.islower():
            type_ = upstream_type
    if code is None or code == str(status):
        code = "upstream_" + ("server_error" if status >= 500 else "error")
    return WorkerRejected(status, message, type_=type_, param=param, code=code)


def _str_or_none(value: object) -> str | None:
    if value is None:
        return None
    return str(value)
