"""Redis Cluster's key space for the hot path's client: which slot a key is in, which node serves a slot,
which key a command touches, and what a redirection says.

A key's slot is CRC16 (XMODEM; `binascii.crc_hqx`, in C) of its *hash tag* (the part inside the first
non-empty `{...}`, else the whole key) modulo 16384, so keys that share a tag share a slot: every script
and pipeline of the gateway names keys of one tag (`llmgw:rl:{subject}:...`, `llmgw:cache:{key}`).
"""

from __future__ import annotations

import binascii
from typing import Any

from redis.exceptions import ResponseError

from gateway.shared_state.redis_urls import Node

SLOTS = 16384
_SCRIPT_CALLS = frozenset({b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO"})
_KEYLESS = frozenset({b"PING", b"ECHO", b"SCRIPT", b"CLUSTER", b"INFO", b"ROLE", b"CLIENT", b"HELLO",
                      b"AUTH", b"SELECT", b"ASKING", b"READONLY", b"FUNCTION", b"TIME", b"DBSIZE", b"FLUSHDB",
                      b"FLUSHALL", b"CONFIG", b"COMMAND"})
BROADCAST = frozenset({b"SCRIPT", b"FUNCTION", b"FLUSHDB", b"FLUSHALL", b"PING"})
"""Commands every primary must run: a script loaded on one node is unknown to the others; a PING (the
limit store's probe while Redis is down) answers only when every primary does."""


def key_slot(key: bytes) -> int:
    """The slot of `key`."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return binascii.crc_hqx(key, 0) % SLOTS


def command_key(args: list[bytes]) -> bytes | None:
    """The (first) key a command touches, or None for a command without keys (any node may run it)."""
    name = args[0].upper()
    if name in _SCRIPT_CALLS:
        return args[3] if len(args) > 3 and args[2] != b"0" else None
    if name in _KEYLESS or len(args) < 2:
        return None
    return args[1]


def command_head(data: bytes, start: int = 0, *, find_end: bool = True) -> tuple[list[bytes], int]:
    """The first four arguments of the RESP command at `start` of `data` (enough to find its key) and
    where the command ends (-1 unless `find_end`: then the rest is not read)."""
    end = data.index(b"\r\n", start)
    count = int(data[start + 1:end])
    position = end + 2
    head: list[bytes] = []
    for index in range(count):
        end = data.index(b"\r\n", position)
        length = int(data[position + 1:end])
        position = end + 2
        if index < 4:
            head.append(data[position:position + length])
        elif not find_end:
            return head, -1
        position += length + 2
    return head, position


def split_commands(data: bytes, count: int) -> list[tuple[bytes, list[bytes]]]:
    """Each of the `count` RESP commands in `data`: its bytes and its first four arguments."""
    commands = []
    start = 0
    for _ in range(count):
        head, end = command_head(data, start)
        commands.append((data[start:end], head))
        start = end
    return commands


def slot_map(reply: list[Any], asked: Node) -> list[Node | None]:
    """The primary serving each slot, from a CLUSTER SLOTS reply (`asked`: the node that answered, whose
    host stands in for an empty or `?` one); None for a slot nobody serves."""
    owners: list[Node | None] = [None] * SLOTS
    for entry in reply:
        start, end, primary = int(entry[0]), int(entry[1]), entry[2]
        host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
        node = (host if host not in ("", "?") else asked[0], int(primary[1]))
        owners[start:end + 1] = [node] * (end - start + 1)
    return owners


def redirection(reply: object) -> tuple[str, int, Node] | None:
    """("MOVED" or "ASK", slot, node) when `reply` is a redirection error, else None."""
    if not isinstance(reply, ResponseError):
        return None
    text = str(reply)
    if not text.startswith(("MOVED ", "ASK ")):
        return None
    kind, slot, address = text.split()[:3]
    host, _, port = address.rpartition(":")
    return kind, int(slot), (host.strip("[]"), int(port))
