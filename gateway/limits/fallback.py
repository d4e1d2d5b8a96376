"""What limits do when Redis cannot answer: `FallbackLimitStore` puts a local (per-replica) store
behind the shared one.

While the primary answers, every call goes to it. The first `StoreUnavailable` marks it *down*:
- fail-open (default): this and every later decision comes from `local`, a `MemoryLimitStore` of this
  replica (so N replicas admit up to N times a key's limits while degraded; budgets count from zero
  locally). `fallback_decisions` counts them and `degraded` is True: export both as metrics/warnings.
- fail-closed: this and every later call raises `StoreUnavailable` (503 + `Retry-After`) at once.
While down, requests never wait on the primary: at most once per `probe_interval_s` a background task
pings it, and the first successful ping (which also replays the primary's in-doubt admits and pending
settles) marks it up again, so recovery takes at most `probe_interval_s` + one ping after Redis returns.

A reservation is settled by the store that made it (`Reservation.store`): local ones locally. Settles
of primary reservations made while it is down are held here and delivered by the probe before the
primary is marked up; a settle that fails on the primary is kept by it for replay. No settle fails the
request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

from gateway.auth.api_keys import KeyLimits
from gateway.errors import StoreUnavailable
from gateway.limits.decisions import Admission, LimitStore, Reservation
from gateway.limits.memory_store import MemoryLimitStore


class FallbackLimitStore:
    """`primary`: the shared store (Redis); `local`: this replica's store, used while the primary is
    down when `fail_open`; `probe_interval_s`: the least time between two pings of a down primary;
    `max_pending_settles`: settles of primary reservations held while it is down (oldest dropped)."""

    def __init__(self, primary: LimitStore, local: MemoryLimitStore | None = None, *, fail_open: bool = True,
                 probe_interval_s: float = 1.0, max_pending_settles: int = 10_000) -> None:
        self.primary = primary
        self.local = local if local is not None else MemoryLimitStore()
        self.fail_open = fail_open
        self.probe_interval_s = probe_interval_s
        self.fallback_decisions = 0
        """Decisions (admit and usage) answered by `local` because the primary was down."""
        self.primary_failures = 0
        """Times the primary was found unreachable (transitions to down)."""
        self._down_since: float | None = None
        self._last_probe = 0.0
        self._probe: asyncio.Task[None] | None = None
        self._pending_settles: deque[tuple[Reservation, int]] = deque(maxlen=max_pending_settles)

    @property
    def degraded(self) -> bool:
        """True while the primary is considered down."""
        return self._down_since is not None

    async def admit(self, subject: str, limits: KeyLimits, tokens: int) -> Admission:
        return await self._decide(lambda store: store.admit(subject, limits, tokens))

    async def usage(self, subject: str, limits: KeyLimits) -> Admission:
        return await self._decide(lambda store: store.usage(subject, limits))

    async def _decide(self, ask: Callable[[LimitStore], Awaitable[Admission]]) -> Admission:
        if self.degraded:
            self._refuse_if_closed(None)
        else:
            try:
                return await ask(self.primary)
            except StoreUnavailable as exc:
                self._mark_down()
                self._refuse_if_closed(exc)
        self.fallback_decisions += 1
        return await ask(self.local)

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        if reservation.store == "memory":
            await self.local.settle(reservation, actual_tokens)
            return
        if not reservation.needs_settle:
            return
        if self.degraded:  # deliver it after recovery rather than wait on a primary that is down
            self._pending_settles.append((reservation, actual_tokens))
            self._schedule_probe()
            return
        try:
            await self.primary.settle(reservation, actual_tokens)
        except StoreUnavailable:  # the primary keeps what it could not deliver, and replays it
            self._mark_down()

    def settle_soon(self, reservation: Reservation, actual_tokens: int) -> None:
        if reservation.store == "memory":
            self.local.settle_soon(reservation, actual_tokens)
        elif not reservation.needs_settle:
            return
        elif self.degraded:
            self._pending_settles.append((reservation, actual_tokens))
            self._schedule_probe()
        else:  # the primary replays what it could not deliver
            self.primary.settle_soon(reservation, actual_tokens)

    async def flush(self) -> None:
        await self.local.flush()
        if not self.degraded:
            try:
                await self.primary.flush()
            except StoreUnavailable:  # kept by the primary; the recovery probe delivers them
                self._mark_down()
                self._schedule_probe()

    async def ping(self) -> None:
        await self.primary.ping()
        self._mark_up()

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self.local.close()
        await self.primary.close()

    def _refuse_if_closed(self, cause: StoreUnavailable | None) -> None:
        self._schedule_probe()
        if not self.fail_open:
            raise StoreUnavailable("rate limits cannot be checked: the limit store is unavailable",
                                   retry_after_s=self.probe_interval_s) from cause

    def _mark_down(self) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._last_probe = self._down_since
            self.primary_failures += 1

    def _mark_up(self) -> None:
        self._down_since = None

    def _schedule_probe(self) -> None:
        now = time.monotonic()
        if self._probe is not None and not self._probe.done():
            return
        if now - self._last_probe < self.probe_interval_s:
            return
        self._last_probe = now
        self._probe = asyncio.get_running_loop().create_task(self._run_probe(), name="limit-store-probe")

    async def _run_probe(self) -> None:
        try:
            await self.primary.ping()
            while self._pending_settles:
                reservation, actual_tokens = self._pending_settles[0]
                await self.primary.settle(reservation, actual_tokens)
                self._pending_settles.popleft()
        except StoreUnavailable:
            return
        self._mark_up()
