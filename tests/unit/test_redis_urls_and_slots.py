"""What `REDIS_URL` can name (one server, a cluster, Sentinel) and how the hot path's cluster client routes:
slots (CRC16 with hash tags), the key of a command in RESP, the slot map, MOVED and ASK."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from gateway.app.store_factory import stores_from_settings
from gateway.auth import KeyLimits
from gateway.limits.redis_commands import LimitCommands
from gateway.settings import SettingsError, load_settings
from gateway.shared_state.cluster_slots import (
    command_head,
    command_key,
    key_slot,
    redirection,
    slot_map,
    split_commands,
)
from gateway.shared_state.redis_urls import RedisUrlError, parse_redis_url
from gateway.shared_state.redis_wire import encode_command


def test_cluster_and_sentinel_urls_are_read() -> None:
    assert parse_redis_url("redis://localhost:6379/0").kind == "single"
    cluster = parse_redis_url("rediss+cluster://app:s%40cret@a:7000,b,[::1]:7002")
    assert (cluster.kind, cluster.tls, cluster.username, cluster.password) == ("cluster", True, "app", "s@cret")
    assert cluster.nodes == (("a", 7000), ("b", 6379), ("::1", 7002))
    sentinel = parse_redis_url("redis+sentinel://:pw@s1:26379,s2/mymaster/2?sentinel_password=sp")
    assert (sentinel.kind, sentinel.service, sentinel.db, sentinel.password) == ("sentinel", "mymaster", 2, "pw")
    assert sentinel.nodes == (("s1", 26379), ("s2", 26379)) and sentinel.sentinel_password == "sp"
    assert sentinel.node_url(("10.0.0.5", 6380)) == "redis://:pw@10.0.0.5:6380/2"


@pytest.mark.parametrize("url", ["redis+cluster://a:70000", "redis+cluster://a:1/3", "redis+sentinel://s1:26379",
                                 "redis+sentinel://s1/svc/x", "memcached://a:1", "redis+cluster://:1",
                                 "redis+cluster://a:port"])
def test_unreadable_urls_say_what_is_wrong(url: str) -> None:
    with pytest.raises(RedisUrlError, match="REDIS_URL"):
        parse_redis_url(url)


def test_an_unreadable_redis_url_stops_the_gateway_at_start() -> None:
    with pytest.raises(SettingsError, match="service name"):
        stores_from_settings(load_settings({"REDIS_URL": "redis+sentinel://127.0.0.1:26379"}))


def test_slots_are_crc16_of_the_hash_tag() -> None:
    assert key_slot(b"123456789") == 0x31C3 % 16384  # the CRC16/XMODEM check value
    assert key_slot(b"foo") == 12182
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers") == key_slot(b"user1000")
    assert key_slot(b"foo{}{bar}") == key_slot(b"foo{}{bar}")  # an empty tag: the whole key
    assert key_slot(b"foo{}{bar}") != key_slot(b"bar")


def test_every_script_and_pipeline_names_keys_of_one_slot() -> None:
    keys = LimitCommands("llmgw:", 60.0, 300.0).keys("key:key_0123", "lease")
    assert len({key_slot(key.encode()) for key in [*keys, keys[3] + ":2026-12"]}) == 1
    assert key_slot(b"llmgw:cache:{abc}") == key_slot(b"llmgw:cache:lock:{abc}")


def test_a_commands_key_is_found_in_its_resp() -> None:
    admit = LimitCommands("llmgw:", 60.0, 300.0).admit("admit", "key:k1", "lease", KeyLimits(), 1, 0.0)
    head, end = command_head(admit)
    assert command_key(head) == b"llmgw:rl:{key:k1}:req" and end == len(admit)
    assert command_head(admit, find_end=False)[1] == -1
    data = encode_command(("GET", "a")) + encode_command(("EVAL", "return 1", 0)) + encode_command(("PING",))
    commands = split_commands(data, 3)
    assert b"".join(c for c, _ in commands) == data
    assert [command_key(head) for _, head in commands] == [b"a", None, None]


def test_the_slot_map_and_redirections_are_read() -> None:
    owners = slot_map([[0, 99, [b"10.0.0.1", 7000, b"id1"], [b"10.0.0.4", 7003, b"id4"]],
                       [100, 16383, [b"", 7001, b"id2"]]], ("10.0.0.9", 7005))
    assert owners[0] == owners[99] == ("10.0.0.1", 7000) and owners[100] == owners[16383] == ("10.0.0.9", 7001)
    assert redirection(ResponseError("MOVED 3999 127.0.0.1:6381")) == ("MOVED", 3999, ("127.0.0.1", 6381))
    assert redirection(ResponseError("ASK 12 [::1]:7000")) == ("ASK", 12, ("::1", 7000))
    assert redirection(ResponseError("READONLY You can't write")) is None and redirection(b"OK") is None
