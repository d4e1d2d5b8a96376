"""Admitting a request under its caller's limits, and settling its tokens once they are known.

Before routing, the request reserves an estimate (prompt tokens estimated + `max_tokens`, or
GATEWAY_DEFAULT_MAX_TOKENS) in one atomic step with every other limit (`gateway.limits`); after the
answer, the reservation is settled with the tokens actually used (0 for a failed request, what was
streamed for a client that left), so counters end equal to what was used. A caller with no limits
skips all of this (no store call on the hot path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import structlog

from gateway.auth.authenticator import Caller
from gateway.errors import RateLimited
from gateway.limits import Admission, LimitStore, Reservation
from gateway.observability.metrics import GatewayMetrics
from gateway.surfaces.base import Surface
from gateway.surfaces.request import InferenceRequest

_log = structlog.get_logger("gateway.inference.admission")

_REFUSALS = {
    "requests": "Rate limit reached for requests per minute.",
    "tokens": "Rate limit reached for tokens per minute.",
    "concurrency": "Too many concurrent requests for this key.",
    "budget": "The token budget of this key is used up for the current period.",
}


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request: its headers (in its surface's names), and the reservation to settle."""

    admission: Admission
    surface: Surface

    @property
    def headers(self) -> dict[str, str]:
        return self.surface.rate_limit_headers(self.admission)


class AdmissionControl:
    """Stage 4 of the pipeline (`admit`), and the settling of what it reserved (`settle`, called by
    `gateway.inference.settlement`)."""

    def __init__(self, store: LimitStore, metrics: GatewayMetrics, *, default_reserve_tokens: int) -> None:
        self.store = store
        self._metrics = metrics
        self._default_reserve = default_reserve_tokens

    def estimate(self, request: InferenceRequest) -> int:
        surface, body = request.surface, request.body
        return surface.prompt_tokens_estimate(body) + surface.completion_reserve(body, self._default_reserve)

    async def admit(self, caller: Caller, request: InferenceRequest) -> Ticket | None:
        """Reserve the request's estimate under every limit of the caller, or raise `RateLimited` (counted,
        with the surface's rate-limit headers and the retry ones). None: the caller has no limits."""
        if not caller.limited:
            return None
        admission = await self.store.admit(caller.subject, caller.limits, self.estimate(request))
        if not admission.allowed:
            error = RateLimited(_REFUSALS.get(admission.reason or "", "Rate limit reached."),
                                code=f"rate_limit_{admission.reason or 'exceeded'}")
            self._metrics.rate_limited.labels(error.error_code or "").inc()
            wait = max(admission.retry_after_s, 0.001)
            error.headers.update({**request.surface.rate_limit_headers(admission), "retry-after": str(math.ceil(wait)),
                                  "retry-after-ms": str(math.ceil(wait * 1000))})
            raise error
        return Ticket(admission, request.surface)

    def settle(self, ticket: Ticket | None, actual_tokens: int) -> None:
        """Settle in the background (callable from a stream's last breath, where awaiting is not safe)."""
        if ticket is None or ticket.admission.reservation is None:
            return
        reservation: Reservation = ticket.admission.reservation
        if reservation.needs_settle:
            self.store.settle_soon(reservation, max(0, actual_tokens))

    async def drain(self) -> None:
        """Deliver pending settles (shutdown)."""
        try:
            await self.store.flush()
        except Exception as exc:  # a lost settle must not fail the shutdown; its lease expires
            _log.warning("settle_flush_failed", error=repr(exc))
