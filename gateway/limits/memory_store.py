"""Limits in this process's memory: the embedded `LimitStore`, and the per-replica fallback when Redis
is down. Same semantics as `gateway.limits.redis_store` (see `gateway.limits.decisions`); plain dicts, no
awaits inside a decision, so each decision is atomic on the event loop.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.auth.api_keys import KeyLimits
from gateway.limits.decisions import (
    BUDGET_KEY_GRACE_S,
    CONCURRENCY_RETRY_S,
    DEFAULT_LEASE_TTL_S,
    DEFAULT_WINDOW_S,
    Admission,
    Reason,
    Reservation,
    binding_reason,
    budget_period,
)


@dataclass
class _Subject:
    admissions: deque[tuple[float, str]] = field(default_factory=deque)
    """(monotonic time, lease) of admissions, oldest first."""
    bucket_level: float | None = None
    """Tokens in the bucket at `bucket_at`; None: full."""
    bucket_at: float = 0.0
    leases: dict[str, float] = field(default_factory=dict)
    """Concurrency lease -> monotonic expiry."""
    budgets: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Period label -> (tokens used, unix time to forget it)."""
    reservations: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Lease -> (tokens reserved, monotonic expiry), until settled."""


class MemoryLimitStore:
    """`window_s`: the requests and tokens window (60 s; tests use 1 or 2 s). `lease_ttl_s`: how long an
    unsettled admission holds its concurrency slot and stays settleable. `clock_offset_s`: added to
    both clocks (tests move it to cross a budget period)."""

    def __init__(self, *, window_s: float = DEFAULT_WINDOW_S, lease_ttl_s: float = DEFAULT_LEASE_TTL_S,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.lease_ttl_s = lease_ttl_s
        self.clock_offset_s = 0.0
        self._monotonic = monotonic
        self._wall = wall
        self._subjects: dict[str, _Subject] = {}

    async def admit(self, subject: str, limits: KeyLimits, tokens: int) -> Admission:
        return self._decide(subject, limits, tokens, admit=True)

    async def usage(self, subject: str, limits: KeyLimits) -> Admission:
        return self._decide(subject, limits, 0, admit=False)

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        self.settle_soon(reservation, actual_tokens)

    async def flush(self) -> None:
        pass

    def settle_soon(self, reservation: Reservation, actual_tokens: int) -> None:
        """In memory there is nothing to wait for: settled at once."""
        state = self._subjects.get(reservation.subject)
        now = self._monotonic() + self.clock_offset_s
        if state is None:
            return
        self._forget_expired(state, now)
        reserved = state.reservations.pop(reservation.lease, None)
        if reserved is None:  # settled already, or expired
            return
        delta = actual_tokens - reserved[0]
        capacity = reservation.tokens_per_minute
        if capacity is not None:
            state.bucket_level = min(capacity, self._bucket(state, capacity, now) - delta)
            state.bucket_at = now
        if reservation.period is not None and reservation.period in state.budgets:
            used, forget_at = state.budgets[reservation.period]
            state.budgets[reservation.period] = (used + delta, forget_at)
        state.leases.pop(reservation.lease, None)

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _bucket(self, state: _Subject, capacity: int, now: float) -> float:
        if state.bucket_level is None:
            return float(capacity)
        refill = max(0.0, now - state.bucket_at) * capacity / self.window_s
        return min(float(capacity), state.bucket_level + refill)

    def _forget_expired(self, state: _Subject, now: float) -> None:
        while state.admissions and state.admissions[0][0] <= now - self.window_s:
            state.admissions.popleft()
        for lease in [lease for lease, expiry in state.leases.items() if expiry <= now]:
            del state.leases[lease]
        for lease in [lease for lease, (_, expiry) in state.reservations.items() if expiry <= now]:
            del state.reservations[lease]
        wall = self._wall() + self.clock_offset_s
        for label in [label for label, (_, forget_at) in state.budgets.items() if forget_at <= wall]:
            del state.budgets[label]

    def _decide(self, subject: str, limits: KeyLimits, tokens: int, *, admit: bool) -> Admission:
        state = self._subjects.setdefault(subject, _Subject())
        now = self._monotonic() + self.clock_offset_s
        wall = self._wall() + self.clock_offset_s
        self._forget_expired(state, now)
        waits: dict[Reason, float] = {}
        window = self.window_s

        rpm = limits.requests_per_minute
        in_window = len(state.admissions)
        if rpm is not None and in_window >= rpm:
            blocking = state.admissions[in_window - rpm][0] if rpm > 0 else now
            waits["requests"] = max(0.0, blocking + window - now)

        tpm = limits.tokens_per_minute
        level = 0.0 if tpm is None else self._bucket(state, tpm, now)
        if tpm is not None:
            need = min(tokens, tpm)
            if level < need:
                waits["tokens"] = (need - level) * window / tpm if tpm > 0 else window

        if limits.max_concurrent is not None and len(state.leases) >= limits.max_concurrent:
            waits["concurrency"] = CONCURRENCY_RETRY_S

        budget = limits.token_budget
        label, period_end = budget_period(wall, limits.budget_period)
        used = state.budgets.get(label, (0, 0.0))[0]
        if budget is not None and used + tokens > budget:
            waits["budget"] = period_end - wall

        allowed = not waits
        taken = admit and allowed
        lease = uuid.uuid4().hex
        reservation = None
        if taken:
            if rpm is not None:
                state.admissions.append((now, lease))
                in_window += 1
            if tpm is not None:
                level -= tokens
                state.bucket_level, state.bucket_at = level, now
            if budget is not None:
                used += tokens
                state.budgets[label] = (used, period_end + self.lease_ttl_s + BUDGET_KEY_GRACE_S)
            if limits.max_concurrent is not None:
                state.leases[lease] = now + self.lease_ttl_s
            reservation = Reservation(subject=subject, lease=lease, tokens=tokens, store="memory",
                                      tokens_per_minute=tpm, period=label if budget is not None else None,
                                      leased=limits.max_concurrent is not None)
            if reservation.needs_settle:
                state.reservations[lease] = (tokens, now + self.lease_ttl_s)
        reason, retry_after = binding_reason(waits) if waits else (None, 0.0)
        newest = state.admissions[-1][0] if state.admissions else None
        return Admission(
            allowed=allowed, reason=reason, retry_after_s=retry_after, reservation=reservation,
            requests_limit=rpm,
            requests_remaining=None if rpm is None else max(0, rpm - in_window),
            requests_reset_s=None if rpm is None else (0.0 if newest is None else newest + window - now),
            tokens_limit=tpm,
            tokens_remaining=None if tpm is None else max(0, math.floor(level)),
            tokens_reset_s=None if tpm is None else (max(0.0, tpm - level) * window / tpm if tpm else 0.0),
            budget_limit=budget,
            budget_remaining=None if budget is None else max(0, budget - used),
        )
