"""Rate limits and budgets: both stores through the `LimitStore` Protocol (memory, and Redis with
several stores standing for replicas), then the Redis fallback against a Redis that is paused or killed."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable

import pytest

from gateway.auth import KeyLimits
from gateway.errors import StoreUnavailable
from gateway.limits import (
    Admission,
    FallbackLimitStore,
    LimitStore,
    MemoryLimitStore,
    RedisLimitStore,
    Reservation,
)
from gateway.limits.redis_commands import ADMIT_LUA
from gateway.shared_state.hot_path import HotPathRedis, connect_hot_path
from gateway.shared_state.redis_client import RedisClient
from gateway.shared_state.redis_wire import RedisWire
from testkit.redis_server import RedisServer
from tests.stores.conftest import Closing, LimitStoreFactory, eventually, ttl_less_keys

LONG = 3600.0
"""A window so long that buckets do not visibly refill during a test."""


def held(admission: Admission) -> Reservation:
    assert admission.allowed and admission.reservation is not None, admission
    return admission.reservation


def set_clock(store: LimitStore, at: dt.datetime) -> None:
    assert isinstance(store, MemoryLimitStore | RedisLimitStore)
    store.clock_offset_s = at.timestamp() - time.time()


@pytest.mark.parametrize(("limits", "tokens", "expected"), [
    (KeyLimits(requests_per_minute=100), 10, 100),
    (KeyLimits(tokens_per_minute=1000), 10, 100),
    (KeyLimits(max_concurrent=7), 10, 7),
    (KeyLimits(token_budget=555), 10, 55),
], ids=["requests", "tokens", "concurrency", "budget"])
async def test_exactly_n_admitted_by_three_replicas(limit_stores: LimitStoreFactory, limits: KeyLimits,
                                                    tokens: int, expected: int) -> None:
    replicas = [limit_stores(window_s=LONG) for _ in range(3)]
    results = await asyncio.gather(*(replicas[i % 3].admit("key_a", limits, tokens) for i in range(300)))
    assert sum(r.allowed for r in results) == expected
    assert all(r.retry_after_s > 0 and r.reservation is None for r in results if not r.allowed)
    assert (await replicas[1].admit("key_b", limits, tokens)).allowed  # other keys are not affected


async def test_no_double_burst_across_window_edges(limit_stores: LimitStoreFactory) -> None:
    window, n = 1.0, 5
    store = limit_stores(window_s=window)
    limits = KeyLimits(requests_per_minute=n)
    admitted: list[float] = []
    start = time.monotonic()
    while time.monotonic() - start < 2.5 * window:
        if (await store.admit("key_a", limits, 0)).allowed:
            admitted.append(time.monotonic())
        await asyncio.sleep(0.005)
    for t in admitted:  # 50 ms of slack for the distance between Redis's clock and ours
        assert sum(1 for u in admitted if t <= u < t + window - 0.05) <= n
    assert 2 * n <= len(admitted) <= 3 * n


async def test_retry_after_says_when_a_refused_request_fits(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores(window_s=1.5)
    limits = KeyLimits(requests_per_minute=3)
    held(await store.admit("key_a", limits, 0))
    await asyncio.sleep(0.4)  # spaces the admissions: the oldest leaves the window first
    held(await store.admit("key_a", limits, 0))
    held(await store.admit("key_a", limits, 0))
    refused = await store.admit("key_a", limits, 0)
    assert not refused.allowed and refused.reason == "requests" and refused.requests_remaining == 0
    assert 0.9 < refused.retry_after_s < 1.15
    assert refused.requests_reset_s is not None and refused.requests_reset_s > refused.retry_after_s
    refused_at = time.monotonic()
    await eventually(lambda: _allowed(store.admit("key_a", limits, 0)))
    assert refused.retry_after_s - 0.1 <= time.monotonic() - refused_at <= refused.retry_after_s + 0.5


async def test_token_retry_after_is_the_time_to_refill_the_shortfall(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores(window_s=1.0)
    limits = KeyLimits(tokens_per_minute=100)
    assert held(await store.admit("key_a", limits, 100))
    refused = await store.admit("key_a", limits, 50)
    assert not refused.allowed and refused.reason == "tokens"
    assert 0.4 < refused.retry_after_s <= 0.5
    refused_at = time.monotonic()
    await eventually(lambda: _allowed(store.admit("key_a", limits, 50)))
    assert refused.retry_after_s - 0.1 <= time.monotonic() - refused_at <= refused.retry_after_s + 0.5


async def _allowed(admission: Awaitable[Admission]) -> bool:
    return (await admission).allowed


@pytest.mark.parametrize("actual", [0, 120, 300, 450])
async def test_settle_leaves_bucket_and_budget_at_actual_usage(limit_stores: LimitStoreFactory,
                                                              actual: int) -> None:
    store = limit_stores(window_s=LONG)
    limits = KeyLimits(tokens_per_minute=1000, token_budget=1000)
    admitted = await store.admit("key_a", limits, 300)
    assert (admitted.tokens_remaining, admitted.budget_remaining) == (700, 700)
    await store.settle(held(admitted), actual)
    now = await store.usage("key_a", limits)
    assert now.budget_remaining == 1000 - actual
    assert now.tokens_remaining is not None and 1000 - actual <= now.tokens_remaining <= 1000 - actual + 1


async def test_the_budget_ends_equal_to_tokens_actually_used(limit_stores: LimitStoreFactory) -> None:
    replicas = [limit_stores(window_s=LONG) for _ in range(3)]
    limits = KeyLimits(token_budget=10_000, tokens_per_minute=10_000)
    actuals = [0, 50, 200, 250, 10, 999, 1, 0, 70, 130]  # failures, under- and overestimates
    admissions = await asyncio.gather(*(replicas[i % 3].admit("key_a", limits, 200) for i in range(10)))
    await asyncio.gather(*(replicas[i % 3].settle(held(a), actual)
                           for i, (a, actual) in enumerate(zip(admissions, actuals, strict=True))))
    now = await replicas[0].usage("key_a", limits)
    assert now.budget_remaining == 10_000 - sum(actuals)


async def test_an_underestimate_drives_the_bucket_negative_until_refilled(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores(window_s=2.0)
    limits = KeyLimits(tokens_per_minute=100)
    await store.settle(held(await store.admit("key_a", limits, 50)), 250)  # the bucket: 100 - 250
    refused = await store.admit("key_a", limits, 0)
    assert not refused.allowed and refused.reason == "tokens" and refused.tokens_remaining == 0
    assert 2.5 < refused.retry_after_s <= 3.0  # 150 tokens short at 50 tokens/s
    assert refused.tokens_reset_s is not None and refused.tokens_reset_s > 4.5
    big = limit_stores(window_s=LONG)  # a request larger than the bucket waits for a full bucket
    assert (await big.admit("key_b", limits, 500)).allowed
    assert (await big.admit("key_b", limits, 1)).reason == "tokens"


async def test_concurrency_leases_are_released_by_settle_once(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores()
    limits = KeyLimits(max_concurrent=3)
    leases = [held(await store.admit("key_a", limits, 1)) for _ in range(3)]
    refused = await store.admit("key_a", limits, 1)
    assert not refused.allowed and refused.reason == "concurrency" and refused.retry_after_s > 0
    await store.settle(leases[0], 1)
    fourth = held(await store.admit("key_a", limits, 1))
    await store.settle(leases[0], 1)  # settling again frees nothing more
    assert (await store.admit("key_a", limits, 1)).reason == "concurrency"
    for lease in [*leases[1:], fourth]:
        await store.settle(lease, 1)
    assert (await store.usage("key_a", limits)).allowed


async def test_expired_leases_stop_counting(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores(lease_ttl_s=0.3)
    limits = KeyLimits(max_concurrent=2, token_budget=1000)
    stale = [held(await store.admit("key_a", limits, 100)) for _ in range(2)]
    assert (await store.admit("key_a", limits, 100)).reason == "concurrency"
    await eventually(lambda: _allowed(store.admit("key_a", limits, 100)))
    await store.settle(stale[0], 0)  # too late: forgotten, its estimate stays counted
    assert (await store.usage("key_a", limits)).budget_remaining == 700


@pytest.mark.parametrize(("period", "pinned", "label", "next_start"), [
    ("day", "2030-01-15T12:00:00", "2030-01-15", "2030-01-16T00:00:00"),
    ("day", "2028-02-29T23:00:00", "2028-02-29", "2028-03-01T00:00:00"),
    ("month", "2030-01-15T12:00:00", "2030-01", "2030-02-01T00:00:00"),
    ("month", "2030-12-31T23:00:00", "2030-12", "2031-01-01T00:00:00"),
])
async def test_budget_refuses_when_exhausted_and_rolls_over(limit_stores: LimitStoreFactory, period: str,
                                                            pinned: str, label: str, next_start: str) -> None:
    store = limit_stores()
    limits = KeyLimits(token_budget=100, budget_period="day" if period == "day" else "month")
    pinned_at = dt.datetime.fromisoformat(pinned).replace(tzinfo=dt.UTC)
    ends_at = dt.datetime.fromisoformat(next_start).replace(tzinfo=dt.UTC)
    set_clock(store, pinned_at)
    first = held(await store.admit("key_a", limits, 60))
    assert first.period == label
    refused = await store.admit("key_a", limits, 50)
    assert not refused.allowed and refused.reason == "budget" and refused.budget_remaining == 40
    assert refused.retry_after_s == pytest.approx((ends_at - pinned_at).total_seconds(), abs=5)
    assert (await store.admit("key_a", limits, 40)).budget_remaining == 0  # an exact fit is admitted

    set_clock(store, ends_at + dt.timedelta(seconds=1))
    after = await store.admit("key_a", limits, 50)
    assert after.allowed and after.budget_remaining == 50 and held(after).period != label
    await store.settle(first, 10)  # lands in its own period, not the new one
    assert (await store.usage("key_a", limits)).budget_remaining == 50


async def test_a_refusal_changes_nothing(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores(window_s=LONG)
    limits = KeyLimits(requests_per_minute=5, tokens_per_minute=100, max_concurrent=2, token_budget=1000)
    held(await store.admit("key_a", limits, 80))
    before = await store.usage("key_a", limits)
    for _ in range(3):
        refused = await store.admit("key_a", limits, 50)
        assert not refused.allowed and refused.reason == "tokens"
    after = await store.usage("key_a", limits)
    assert (after.requests_remaining, after.tokens_remaining, after.budget_remaining) == (4, 20, 920)
    assert (before.requests_remaining, before.tokens_remaining, before.budget_remaining) == (4, 20, 920)
    held(await store.admit("key_a", limits, 10))  # the refusals took no concurrency slot either
    assert (await store.admit("key_a", limits, 0)).reason == "concurrency"


async def test_usage_reports_without_admitting(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores(window_s=LONG)
    limits = KeyLimits(requests_per_minute=2, max_concurrent=1)
    for _ in range(5):
        now = await store.usage("key_a", limits)
        assert now.allowed and now.requests_remaining == 2 and now.reservation is None
    assert (await store.usage("key_a", KeyLimits())) == Admission(allowed=True)


async def test_settle_is_idempotent(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores(window_s=LONG)
    limits = KeyLimits(token_budget=1000, tokens_per_minute=1000)
    reservation = held(await store.admit("key_a", limits, 100))
    for actual in (40, 40, 500, 0):
        await store.settle(reservation, actual)
    now = await store.usage("key_a", limits)
    assert (now.budget_remaining, now.tokens_remaining) == (960, 960)


async def test_every_redis_key_written_has_a_ttl(redis_url: str, redis_client: RedisClient, closing: Closing) -> None:
    store = closing(RedisLimitStore(wire(redis_url), window_s=2.0))
    limits = KeyLimits(requests_per_minute=10, tokens_per_minute=100, max_concurrent=5, token_budget=1000)
    kept = held(await store.admit("key_a", limits, 10))
    await store.settle(held(await store.admit("key_a", limits, 10)), 30)
    await store.usage("key_b", limits)
    await store.settle(Reservation(subject="key_c", lease="x", tokens=1, store="redis", leased=True), 1)
    names = {name.decode() async for name in redis_client.scan_iter(match="llmgw:*")}
    assert {n.split(":", 3)[-1] for n in names if "{key_a}" in n} >= {"req", "tok", "leases"}
    assert kept.lease.encode() in await redis_client.zrange("llmgw:rl:{key_a}:leases", 0, -1)
    assert any(":budget:" in n for n in names)
    assert await ttl_less_keys(redis_client, "*") == []


def fast_client(server: RedisServer) -> RedisWire:
    return RedisWire(server.url, connect_timeout_s=0.3)


def fast_store(server: RedisServer) -> RedisLimitStore:
    return RedisLimitStore(fast_client(server), timeout_s=0.3)


def wire(url: str) -> HotPathRedis:
    """A hot-path client to the Redis at `url`."""
    return connect_hot_path(url, connect_timeout_s=5.0)


async def until_recovered(store: FallbackLimitStore) -> None:
    async def probe() -> bool:
        await store.usage("probe", KeyLimits())
        return not store.degraded
    await eventually(probe)


async def test_fail_open_decides_locally_while_redis_is_paused(
        redis_server: RedisServer, closing: Closing) -> None:
    store = closing(FallbackLimitStore(fast_store(redis_server), probe_interval_s=0.2))
    limits = KeyLimits(requests_per_minute=3)
    assert held(await store.admit("key_a", limits, 1)).store == "redis"
    with redis_server.paused():
        local = [await asyncio.wait_for(store.admit("key_a", limits, 1), 30) for _ in range(4)]  # no hang
        assert [a.allowed for a in local] == [True, True, True, False]  # this replica's own limits
        assert all(a.reservation is None or a.reservation.store == "memory" for a in local)
        assert store.degraded and store.fallback_decisions == 4 and store.primary_failures == 1
        await store.settle(held(local[0]), 1)  # settled locally, without waiting on Redis
    await until_recovered(store)
    again = await store.admit("key_a", limits, 1)
    assert held(again).store == "redis" and again.requests_remaining == 1  # Redis kept its count


async def test_fail_closed_refuses_with_503_while_redis_is_paused(
        redis_server: RedisServer, closing: Closing) -> None:
    store = closing(FallbackLimitStore(fast_store(redis_server), fail_open=False,
                                       probe_interval_s=0.2))
    limits = KeyLimits(requests_per_minute=100)
    with redis_server.paused():
        for _ in range(3):
            with pytest.raises(StoreUnavailable) as refused:
                await store.admit("key_a", limits, 1)
            assert refused.value.status_code() == 503 and refused.value.headers["Retry-After"] == "1"
        with pytest.raises(StoreUnavailable):
            await store.usage("key_a", limits)
        assert store.fallback_decisions == 0
    await eventually(lambda: _answers(store.admit("key_a", limits, 1)))


async def test_a_killed_redis_falls_back_then_recovers_on_restart(
        redis_server: RedisServer, closing: Closing) -> None:
    store = closing(FallbackLimitStore(fast_store(redis_server), probe_interval_s=0.2))
    limits = KeyLimits(requests_per_minute=100, token_budget=1000)
    assert held(await store.admit("key_a", limits, 1)).store == "redis"
    redis_server.kill()
    assert held(await store.admit("key_a", limits, 1)).store == "memory"
    redis_server.restart()
    await until_recovered(store)
    assert held(await store.admit("key_a", limits, 1)).store == "redis"  # scripts are loaded again


async def test_settles_missed_while_redis_was_paused_are_delivered(
        redis_server: RedisServer, closing: Closing) -> None:
    store = closing(FallbackLimitStore(fast_store(redis_server), probe_interval_s=0.2))
    limits = KeyLimits(token_budget=1000)
    first = held(await store.admit("key_a", limits, 300))
    second = held(await store.admit("key_a", limits, 300))
    with redis_server.paused():
        await store.settle(first, 100)  # times out: the Redis store keeps it
        await store.settle(second, 50)  # degraded: the fallback keeps it
    await until_recovered(store)
    assert (await store.usage("key_a", limits)).budget_remaining == 850


async def test_an_admit_that_timed_out_is_cancelled_when_redis_answers(
        redis_server: RedisServer, closing: Closing) -> None:
    store = closing(fast_store(redis_server))
    limits = KeyLimits(max_concurrent=1, token_budget=1000, requests_per_minute=10, tokens_per_minute=1000)
    with redis_server.paused(), pytest.raises(StoreUnavailable):
        await store.admit("key_a", limits, 100)  # Redis runs it once resumed: nobody holds that lease
    assert store.unsettled == 1
    await eventually(lambda: _pings(store))
    assert store.unsettled == 0
    now = await store.usage("key_a", limits)
    assert now.allowed and now.budget_remaining == 1000 and now.requests_remaining == 10
    assert now.tokens_remaining == 1000  # the cancel gave back the bucket and the budget it could not see


async def test_a_late_admit_after_its_cancel_changes_nothing(redis_url: str, redis_client: RedisClient,
                                                            closing: Closing) -> None:
    store = closing(RedisLimitStore(wire(redis_url)))
    limits = KeyLimits(max_concurrent=1, token_budget=1000)
    ghost = Reservation(subject="key_a", lease="lost", tokens=100, store="redis")
    await store._run_settle(ghost, 0, cancel=True)  # the replay overtook the admit it cancels
    late = await store._run_admit("admit", "key_a", "lost", limits, 100)
    assert late.cancelled and not late.allowed
    assert (await store.usage("key_a", limits)).budget_remaining == 1000


async def _pings(store: RedisLimitStore) -> bool:
    return await _answers(store.ping())


async def _answers(call: Awaitable[object]) -> bool:
    try:
        await call
    except StoreUnavailable:
        return False
    return True


async def test_settle_soon_rides_with_the_next_admit(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores(window_s=LONG)
    limits = KeyLimits(max_concurrent=1, token_budget=1000)
    first = held(await store.admit("key_a", limits, 300))
    store.settle_soon(first, 120)  # frees the lease, charges 120 instead of 300: in the same round trip
    second = held(await store.admit("key_a", limits, 300))
    assert (await store.usage("key_a", limits)).budget_remaining == 1000 - 120 - 300
    store.settle_soon(second, 80)
    await store.flush()
    now = await store.usage("key_a", limits)
    assert now.allowed and now.budget_remaining == 1000 - 120 - 80


async def test_settle_soon_is_sent_alone_when_no_admit_follows(limit_stores: LimitStoreFactory) -> None:
    store = limit_stores(window_s=LONG)
    limits = KeyLimits(token_budget=1000)
    store.settle_soon(held(await store.admit("key_a", limits, 300)), 10)

    async def settled() -> bool:
        return (await store.usage("key_a", limits)).budget_remaining == 990

    await eventually(settled)


async def test_settles_and_admits_survive_redis_losing_its_scripts(redis_url: str, redis_client: RedisClient,
                                                                   closing: Closing) -> None:
    store = closing(RedisLimitStore(wire(redis_url), window_s=LONG))
    limits = KeyLimits(max_concurrent=1, token_budget=1000)
    first = held(await store.admit("key_b", limits, 300))
    await redis_client.script_flush()  # as after a Redis restart
    store.settle_soon(first, 100)
    second = held(await store.admit("key_b", limits, 300))  # NOSCRIPT: loaded, and both sent again
    store.settle_soon(second, 100)
    await store.flush()
    assert (await store.usage("key_b", limits)).budget_remaining == 800


async def test_settle_soon_while_redis_is_paused_is_delivered_later(
        redis_server: RedisServer, closing: Closing) -> None:
    store = closing(FallbackLimitStore(fast_store(redis_server), probe_interval_s=0.2))
    limits = KeyLimits(token_budget=1000)
    first = held(await store.admit("key_a", limits, 300))
    with redis_server.paused():
        store.settle_soon(first, 100)
        await store.flush()  # times out: kept for replay
    await until_recovered(store)
    assert (await store.usage("key_a", limits)).budget_remaining == 900


async def test_an_admit_riding_with_a_settle_runs_once_when_only_the_settle_script_is_missing(
        redis_url: str, redis_client: RedisClient, closing: Closing) -> None:
    await redis_client.script_flush()
    await redis_client.script_load(ADMIT_LUA)  # admit.lua only
    store = closing(RedisLimitStore(wire(redis_url), window_s=LONG))
    limits = KeyLimits(max_concurrent=1, token_budget=1000)
    first = held(await store.admit("key_c", limits, 300))
    store.settle_soon(first, 100)
    second = held(await store.admit("key_c", limits, 300))  # the settle meets NOSCRIPT, the admit does not
    store.settle_soon(second, 50)
    await store.flush()
    now = await store.usage("key_c", limits)
    assert now.allowed and now.budget_remaining == 850
