"""The hot path's Redis client against a real Redis: replies in order for concurrent callers, error
replies in place, a caller that gives up does not shift anyone's reply, a lost or silent server fails
what is in flight and the next call connects again; and the RESP it writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from gateway.shared_state.hot_path import HotPathRedis, connect_hot_path
from gateway.shared_state.redis_wire import RedisAddress, RedisWire, encode_command, script_sha
from testkit.redis_server import RedisServer


@pytest.fixture
async def wire(redis_url: str) -> AsyncIterator[HotPathRedis]:
    """The hot path's client of each shape of Redis (one server, a cluster, a Sentinel's primary)."""
    client = connect_hot_path(redis_url, connect_timeout_s=5.0)
    yield client
    await client.close()


def test_commands_are_written_as_arrays_of_bulk_strings() -> None:
    assert encode_command(("SET", "k", b"v\r\n", 12, 0.5)) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\n12\r\n$3\r\n0.5\r\n")


def test_urls_name_where_and_how_to_connect() -> None:
    plain = RedisAddress.from_url("redis://cache.internal:6380/2")
    assert (plain.host, plain.port, plain.db, plain.tls, plain.password) == ("cache.internal", 6380, 2, False, None)
    secure = RedisAddress.from_url("rediss://app:s%40cret@redis:6379?db=3")
    assert (secure.tls, secure.username, secure.password, secure.db) == (True, "app", "s@cret", 3)
    assert secure.handshake("gw") == [("AUTH", "app", "s@cret"), ("SELECT", 3), ("CLIENT", "SETNAME", "gw")]
    assert RedisAddress.from_url("unix:///run/redis.sock?db=1").path == "/run/redis.sock"
    with pytest.raises(ValueError, match="not a redis URL"):
        RedisAddress.from_url("http://localhost:6379")


async def test_concurrent_callers_each_get_their_own_reply(wire: HotPathRedis) -> None:
    await wire.call("DEL", "wire:n")
    replies = await asyncio.gather(*(wire.call("INCR", "wire:n") for _ in range(200)))
    assert sorted(replies) == list(range(1, 201))
    assert await wire.pipeline([("SET", "wire:k", "v", "PX", 10_000), ("GET", "wire:k"), ("GET", "wire:none")]) == [
        b"OK", b"v", None]


async def test_error_replies_stay_in_their_place(wire: HotPathRedis) -> None:
    replies = await wire.pipeline([("EVALSHA", "0" * 40, 0), ("INCRBY", "wire:x", "one"), ("PING",)])
    assert isinstance(replies[0], NoScriptError) and isinstance(replies[1], ResponseError) and replies[2] == b"PONG"
    with pytest.raises(ResponseError):
        await wire.call("INCRBY", "wire:x", "one")
    assert await wire.call("EVAL", "return 7", 0) == 7
    assert await wire.call("EVALSHA", script_sha("return 7"), 0) == 7


async def test_a_caller_that_gives_up_does_not_shift_the_replies(redis_server: RedisServer) -> None:
    wire = RedisWire(redis_server.url, connect_timeout_s=1.0)
    try:
        await wire.call("SET", "wire:a", "a")
        with redis_server.paused(), pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await wire.call("GET", "wire:missing")
        assert await wire.call("GET", "wire:a") == b"a"  # the abandoned reply was read and dropped
    finally:
        await wire.close()


async def test_a_lost_server_fails_what_is_in_flight_and_the_next_call_reconnects(
        redis_server: RedisServer) -> None:
    wire = RedisWire(redis_server.url, connect_timeout_s=1.0)
    try:
        assert await wire.call("PING") == b"PONG"
        redis_server.kill()
        with pytest.raises(RedisConnectionError):
            await wire.call("PING")
        redis_server.restart()
        assert await wire.call("PING") == b"PONG"
    finally:
        await wire.close()


async def test_a_silent_server_is_dropped_after_stale_after(redis_server: RedisServer) -> None:
    wire = RedisWire(redis_server.url, connect_timeout_s=0.2, stale_after_s=0.3)
    try:
        assert await wire.call("PING") == b"PONG"
        with redis_server.paused():
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await wire.call("PING")
            await asyncio.sleep(0.4)
            with pytest.raises(RedisConnectionError):  # the old connection dropped; a new one can't set up
                await wire.call("PING")
        assert await wire.call("PING") == b"PONG"
    finally:
        await wire.close()
