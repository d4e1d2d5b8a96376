"""Rate limits and token budgets: one admission decision per request, the same in memory and in Redis.

A request is *admitted* (`LimitStore.admit`) before it is routed, with an estimate of its tokens
(prompt + `max_tokens`), and *settled* (`LimitStore.settle`) once the worker reports actual usage (or
the request failed: actual 0, or the client left: what was streamed). Each of a key's limits
(`gateway.auth.KeyLimits`, None = unlimited) is one check; a request is admitted only if every check
passes, and then every counter moves together. A refusal changes nothing.

requests_per_minute (N): sliding window log
    At most N admissions in ANY window of `window_s` (60 s): each admission's time is logged; a
    request is admitted while fewer than N logged times are younger than `window_s`. No burst at
    window edges (a fixed window or a bursty GCRA would let ~2N through in one minute).
    Refused: `retry_after_s` = when enough logged times leave the window for one more to fit.

tokens_per_minute (T): token bucket
    Capacity T, refilled at T per `window_s`, starts full. Admission needs `min(estimate, T)` tokens in
    the bucket (a request larger than the whole bucket waits for a full bucket), and takes `estimate`
    out. Settle puts back `estimate - actual` (takes more when actual > estimate: the bucket may go
    negative and then refuses until refilled). `retry_after_s` = time to refill the shortfall.

max_concurrent (C): leases
    An admitted request holds a lease (`lease_ttl_s`, 15 min) until settled. Expired leases (a replica
    died with requests in flight) stop counting. Refused while C leases are live; `retry_after_s` is a
    hint (`CONCURRENCY_RETRY_S`): nobody knows when a request will finish.

token_budget (B) per `budget_period` (UTC day or calendar month): counter per period
    Refused when `used + estimate > B`; admission adds the estimate, settle adds `actual - estimate`,
    so once every request is settled the counter equals the tokens actually used, and it overshoots B
    by at most what requests used beyond their estimates. `retry_after_s` = until the next period.

When several checks refuse, `reason` is the one with the longest wait and `retry_after_s` that wait.
`*_remaining` are after this admission; `*_reset_s` are the time until that limit is back to full
(requests: the newest logged time leaves the window; tokens: the bucket is full).

Times: Redis uses its own clock (`TIME`) for every replica; memory uses `time.monotonic` for windows
and `time.time` for budget periods. `clock_offset_s` (both stores) shifts "now": tests move it forward
to cross a period boundary.

`settle` is idempotent per reservation; a reservation not settled within `lease_ttl_s` is forgotten
(its estimate stays counted).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Protocol

import msgspec

from gateway.auth.api_keys import KeyLimits

Reason = Literal["requests", "tokens", "concurrency", "budget"]
REASONS_IN_ORDER: tuple[Reason, ...] = ("requests", "tokens", "concurrency", "budget")
DEFAULT_WINDOW_S = 60.0
DEFAULT_LEASE_TTL_S = 900.0
CONCURRENCY_RETRY_S = 1.0
BUDGET_KEY_GRACE_S = 60.0
"""A budget counter lives until its period ends + lease TTL + this (late settles still land)."""


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    """What `settle` needs to undo or confirm an admission."""

    subject: str
    lease: str
    """Unique per admission (uuid4 hex); the request log member and the concurrency lease."""
    tokens: int
    """The estimate taken at admission."""
    store: Literal["memory", "redis"]
    """Which kind of store admitted it (a fallback settles local reservations locally)."""
    tokens_per_minute: int | None = None
    """The bucket's capacity at admission, None: no bucket to reconcile."""
    period: str | None = None
    """The budget period's label (`2025-07` or `2025-07-14`), None: no budget."""
    leased: bool = False
    """A concurrency slot is held."""
    budget_period: Literal["day", "month"] | None = None
    """Only for a cancel of an admission whose answer never came (so `period` is unknown): the budget's
    period kind, from which the store works out the label at the admission's time."""

    @property
    def needs_settle(self) -> bool:
        return self.tokens_per_minute is not None or self.period is not None or self.leased


class Admission(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    reason: Reason | None = None
    retry_after_s: float = 0.0
    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_s: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None
    budget_limit: int | None = None
    budget_remaining: int | None = None
    reservation: Reservation | None = None


class LimitStore(Protocol):
    async def admit(self, subject: str, limits: KeyLimits, tokens: int) -> Admission:
        """Check every limit of `subject` for a request estimated at `tokens`; if all pass, take them."""
        ...

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Reconcile tokens (bucket and budget move by actual - estimate) and release the lease."""
        ...

    def settle_soon(self, reservation: Reservation, actual_tokens: int) -> None:
        """`settle` in the background: delivered in order, soon (Redis: with the next admit, or within
        a few milliseconds), and replayed if the store is unreachable."""
        ...

    async def flush(self) -> None:
        """Deliver every settle `settle_soon` still holds (shutdown)."""
        ...

    async def usage(self, subject: str, limits: KeyLimits) -> Admission:
        """The current state, as `admit` would see a 0-token request, without admitting it."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers now (the fallback's recovery probe)."""
        ...

    async def close(self) -> None: ...


def budget_period(now: float, period: Literal["day", "month"]) -> tuple[str, float]:
    """The UTC period containing unix time `now`: its label and the unix time it ends."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).date()
    if period == "day":
        label, end = day.isoformat(), day + dt.timedelta(days=1)
    else:
        label = f"{day.year:04d}-{day.month:02d}"
        end = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return label, dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC).timestamp()


def binding_reason(waits: dict[Reason, float]) -> tuple[Reason, float]:
    """Of the refusing checks and their waits, the one that binds longest (ties: `REASONS_IN_ORDER`)."""
    reason = max(waits, key=lambda r: (waits[r], -REASONS_IN_ORDER.index(r)))
    return reason, waits[reason]
