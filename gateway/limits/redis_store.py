"""Limits in Redis, exact across replicas: every decision is one Lua script (`admit.lua`) run with
EVALSHA (on NOSCRIPT both scripts are loaded and what met it is sent again), checking and writing all of
a subject's counters at once with Redis's own clock. Semantics: `gateway.limits.decisions`.

Layout (`prefix` defaults to `llmgw:`; the subject in braces is a Redis Cluster hash tag, so all of a
subject's keys share a slot). Every key has a TTL, and a subject's state is a handful of keys whatever
its traffic (the requests log aside, which holds the admissions of the last window, at most the limit):

    llmgw:rl:{subject}:req              zset    lease -> admission time    TTL window + 1 s
    llmgw:rl:{subject}:tok              hash    level, at (the bucket)     TTL until full again + 1 s
    llmgw:rl:{subject}:leases           zset    lease -> lease expiry      TTL lease TTL + 1 s
    llmgw:rl:{subject}:budget:<period>  string  tokens used in the period  TTL period end + lease TTL + 60 s
    llmgw:rl:{subject}:cancelled:<lease> string  a cancel that overtook its admit   TTL lease TTL

A lease is written for every admission that must be settled (a token bucket, a budget or a
concurrency limit); settle.lua removes it and moves the counters by actual - estimate, the estimate,
bucket and period coming from the `Reservation`. Only the first settle finds the lease, so settles are
idempotent without a record per request.

`settle_soon` sends a settle at once and does not wait for its reply: nothing waits on the request's
way out, and the settle reaches Redis ahead of this replica's next admit. Under load the client
(`gateway.shared_state.redis_wire`) writes the commands of one event-loop iteration together, so settles and
admits of concurrent requests share writes; a request costs one round trip to Redis.

An admit that times out may still run later (a paused Redis executes what it had buffered). Its
lease is remembered as *in doubt*, and a settle that could not reach Redis as *pending*; both are
replayed (`settle.lua`, idempotent) as soon as Redis answers again: an in-doubt admit is cancelled
(everything it took is given back; a late copy finds the cancel marker and does nothing).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import deque
from typing import Any

import msgspec
from redis.exceptions import NoScriptError, RedisError

from gateway.auth.api_keys import KeyLimits
from gateway.errors import StoreUnavailable
from gateway.limits.decisions import DEFAULT_LEASE_TTL_S, DEFAULT_WINDOW_S, Admission, Reason, Reservation
from gateway.limits.redis_commands import ADMIT_LUA, SETTLE_LUA, LimitCommands
from gateway.shared_state.hot_path import HotPathRedis
from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, unavailable
from gateway.shared_state.redis_wire import encode_command

REPLAY_BATCH = 100
_LEASE_PREFIX = secrets.token_hex(8)
_lease_sequence = itertools.count(1)

Settle = tuple[Reservation, int, bool]
"""(reservation, actual tokens, cancel)."""


def new_lease() -> str:
    """Unique across replicas (a random prefix per process) without a random draw per request."""
    return f"{_LEASE_PREFIX}{next(_lease_sequence):016x}"


class _Decision(msgspec.Struct, kw_only=True):
    """What admit.lua returns (JSON; absent = not limited)."""

    allowed: bool
    cancelled: bool = False
    reason: Reason | None = None
    retry_after: float = 0.0
    period: str | None = None
    requests_limit: float | None = None
    requests_remaining: float | None = None
    requests_reset: float | None = None
    tokens_limit: float | None = None
    tokens_remaining: float | None = None
    tokens_reset: float | None = None
    budget_limit: float | None = None
    budget_remaining: float | None = None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


class RedisLimitStore:
    """A `LimitStore` on `redis` (`gateway.shared_state.hot_path.connect_hot_path`: the hot path's lean client). Every
    replica must use the same `window_s` and `lease_ttl_s`. `close_client`: close `redis` in `close`.
    `clock_offset_s` (attribute) shifts Redis's clock for this store's decisions (tests only).
    `max_in_doubt` bounds the admits and settles remembered for replay while Redis is unreachable.
    `timeout_s`: how long one call to Redis may take (one deadline per call)."""

    def __init__(self, redis: HotPathRedis, prefix: str = DEFAULT_KEY_PREFIX, *,
                 window_s: float = DEFAULT_WINDOW_S, lease_ttl_s: float = DEFAULT_LEASE_TTL_S,
                 close_client: bool = True, max_in_doubt: int = 10_000, timeout_s: float = 1.0) -> None:
        self._timeout_s = timeout_s
        self.window_s = window_s
        self.lease_ttl_s = lease_ttl_s
        self.clock_offset_s = 0.0
        self._redis = redis
        self._prefix = prefix
        self._close_client = close_client
        self._commands = LimitCommands(prefix, window_s, lease_ttl_s)
        self._decoder = msgspec.json.Decoder(_Decision)
        self._unsettled: deque[Settle] = deque(maxlen=max_in_doubt)
        """Settles and cancels to replay through settle.lua once Redis answers."""
        self._replaying = False
        self._in_flight: set[asyncio.Future[Any]] = set()
        """The replies of settles sent and not yet answered."""

    @property
    def unsettled(self) -> int:
        """Admits in doubt and settles not yet delivered, waiting for Redis."""
        return len(self._unsettled)

    async def admit(self, subject: str, limits: KeyLimits, tokens: int) -> Admission:
        lease = new_lease()
        try:
            decision = await self._run_admit("admit", subject, lease, limits, tokens)
            if not decision.allowed and not decision.cancelled and self._unsettled:
                # Settles sent before it failed meanwhile (say NOSCRIPT, Redis restarted): deliver them,
                # then decide again (a refusal wrote nothing).
                await self._replay()
                decision = await self._run_admit("admit", subject, lease, limits, tokens)
        except StoreUnavailable:
            doubt = Reservation(subject=subject, lease=lease, tokens=tokens, store="redis",
                                tokens_per_minute=limits.tokens_per_minute,
                                budget_period=limits.budget_period if limits.token_budget is not None else None,
                                leased=limits.max_concurrent is not None)
            self._unsettled.append((doubt, 0, True))
            raise
        reservation = None
        if decision.allowed:
            reservation = Reservation(
                subject=subject, lease=lease, tokens=tokens, store="redis",
                tokens_per_minute=limits.tokens_per_minute, period=decision.period,
                leased=limits.max_concurrent is not None)
        await self._replay()
        return self._admission(decision, reservation)

    async def usage(self, subject: str, limits: KeyLimits) -> Admission:
        decision = await self._run_admit("peek", subject, "", limits, 0)
        await self._replay()
        return self._admission(decision, None)

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        if not reservation.needs_settle:
            return
        try:
            await self._run_settle(reservation, actual_tokens, cancel=False)
        except StoreUnavailable:
            self._unsettled.append((reservation, actual_tokens, False))
            raise
        await self._replay()

    def settle_soon(self, reservation: Reservation, actual_tokens: int) -> None:
        """Sent at once without waiting (with other requests' commands when Redis is busy, so always
        ahead of this replica's next admit); a settle that fails is kept and replayed."""
        if not reservation.needs_settle:
            return
        settle = (reservation, actual_tokens, False)
        futures = self._redis.send_nowait(
            self._commands.settle(reservation, actual_tokens, False, self.clock_offset_s), 1)
        if futures is None:  # not connected: the next call connects and replays it
            self._unsettled.append(settle)
            return
        future = futures[0]
        self._in_flight.add(future)
        future.add_done_callback(lambda done: self._settle_answered(settle, done))

    def _settle_answered(self, settle: Settle, future: asyncio.Future[Any]) -> None:
        self._in_flight.discard(future)
        failed = future.cancelled() or future.exception() is not None or isinstance(future.result(), Exception)
        if failed:
            self._unsettled.append(settle)

    async def flush(self) -> None:
        """Raises `StoreUnavailable` if Redis cannot take them (they are kept, and replayed later)."""
        if self._in_flight:
            _, waiting = await asyncio.wait(set(self._in_flight), timeout=self._timeout_s)
            if waiting:
                raise StoreUnavailable(f"redis settle failed: no reply within {self._timeout_s:g} s")
        while self._unsettled:
            left = len(self._unsettled)
            await self._replay()
            if len(self._unsettled) >= left:
                raise StoreUnavailable("redis settle failed: settles are waiting for Redis")

    async def ping(self) -> None:
        try:
            await self._redis.call("PING", timeout_s=self._timeout_s)
        except (RedisError, OSError) as exc:
            raise unavailable("ping", exc) from exc
        await self._replay()

    async def close(self) -> None:
        if self._close_client:
            await self._redis.close()

    async def _run_admit(self, mode: str, subject: str, lease: str, limits: KeyLimits, tokens: int) -> _Decision:
        command = self._commands.admit(mode, subject, lease, limits, tokens, self.clock_offset_s)
        return self._decoder.decode(await self._pipelined(mode, [], command))

    async def _run_settle(self, reservation: Reservation, actual_tokens: int, *, cancel: bool) -> None:
        await self._pipelined("settle", [(reservation, actual_tokens, cancel)], None)

    async def _pipelined(self, operation: str, settles: list[Settle], admit: bytes | None) -> Any:
        """Send `settles`, then the `admit` call if given, in one round trip; the admit's reply. Errors
        (Redis unreachable, or slower than `timeout_s`) raise `StoreUnavailable`.

        Redis may lack the scripts (this process's first call, or after a restart): on NOSCRIPT both
        are loaded, and the commands that met it are sent again, in order (settle.lua is idempotent;
        an admit that met NOSCRIPT did not run; one that ran is sent again only if it was refused, since
        the settles before it may have freed what it needed, and a refusal wrote nothing)."""
        offset = self.clock_offset_s
        commands = [self._commands.settle(r, actual, cancel, offset) for r, actual, cancel in settles]
        if admit is not None:
            commands.append(admit)
        try:
            replies = await self._redis.request(b"".join(commands), len(commands), self._timeout_s)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing and admit is not None and missing[-1] != len(commands) - 1 \
                    and not self._decoder.decode(replies[-1]).allowed:
                missing.append(len(commands) - 1)  # refused without the settles before it: it wrote nothing
            if missing:
                await self._redis.request(encode_command(("SCRIPT", "LOAD", SETTLE_LUA))
                                          + encode_command(("SCRIPT", "LOAD", ADMIT_LUA)), 2, self._timeout_s)
                again = await self._redis.request(b"".join(commands[i] for i in missing), len(missing),
                                                  self._timeout_s)
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
            if admit is None:
                return None
            if isinstance(replies[-1], Exception):
                raise replies[-1]
        except (RedisError, OSError) as exc:
            raise unavailable(operation, exc) from exc
        return replies[-1]

    async def _replay(self) -> None:
        """Deliver the in-doubt cancels and pending settles, a batch per call, oldest first."""
        if not self._unsettled or self._replaying:
            return
        self._replaying = True
        batch = [self._unsettled.popleft() for _ in range(min(REPLAY_BATCH, len(self._unsettled)))]
        try:
            await self._pipelined("replay settles", batch, None)
        except StoreUnavailable:
            self._unsettled.extendleft(reversed(batch))
        finally:
            self._replaying = False

    @staticmethod
    def _admission(decision: _Decision, reservation: Reservation | None) -> Admission:
        return Admission(
            allowed=decision.allowed, reason=decision.reason, retry_after_s=decision.retry_after,
            reservation=reservation,
            requests_limit=_int(decision.requests_limit), requests_remaining=_int(decision.requests_remaining),
            requests_reset_s=decision.requests_reset,
            tokens_limit=_int(decision.tokens_limit), tokens_remaining=_int(decision.tokens_remaining),
            tokens_reset_s=decision.tokens_reset,
            budget_limit=_int(decision.budget_limit), budget_remaining=_int(decision.budget_remaining))
