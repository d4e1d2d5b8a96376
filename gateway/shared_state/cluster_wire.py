"""The hot path's Redis client for a Redis Cluster: one multiplexed `RedisWire` per primary, commands
routed by their key's slot (`gateway.shared_state.cluster_slots`).

- The slot map comes from CLUSTER SLOTS, asked of the known nodes (the URL's seeds first) on the first
  call, after a node's connection fails, and after a MOVED (at most every `REFRESH_INTERVAL_S`).
- A MOVED reply sends its command again to the node it names (and refreshes the map); an ASK reply
  (a slot being migrated) sends ASKING and the command to the node it names, once.
- A command without a key goes to any primary; SCRIPT, FUNCTION and PING go to every primary (a script
  loaded on one node is unknown to the others; the limit store's probe must see every shard up) and
  return the first error, else the first primary's reply.

Callers pass commands already in RESP, as to `RedisWire`; the commands of one `request` may span nodes
(a batch of settles of many subjects): each node gets its share in one write, in order, and the replies
come back in the callers' order. Connection errors are raised as `RedisWire` raises them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gateway.shared_state.cluster_slots import (
    BROADCAST,
    command_head,
    command_key,
    key_slot,
    redirection,
    slot_map,
    split_commands,
)
from gateway.shared_state.redis_urls import Node, RedisEndpoints
from gateway.shared_state.redis_wire import Arg, Command, RedisAddress, RedisWire, encode_command

REFRESH_INTERVAL_S = 0.1
_ASKING = encode_command(("ASKING",))


class ClusterWire:
    """The same calls as `RedisWire`, on the cluster that `endpoints` (a `redis+cluster://` URL) names."""

    def __init__(self, endpoints: RedisEndpoints, *, connect_timeout_s: float = 0.5, stale_after_s: float = 5.0,
                 client_name: str = "llm-gateway") -> None:
        self._endpoints = endpoints
        self._options: dict[str, Any] = {"connect_timeout_s": connect_timeout_s, "stale_after_s": stale_after_s,
                                         "client_name": client_name}
        self._wires: dict[Node, RedisWire] = {}
        self._owners: list[Node | None] | None = None
        self._refreshed_at = 0.0
        self._refreshing: asyncio.Lock | None = None
        self._background: asyncio.Task[None] | None = None

    async def call(self, *command: Arg, timeout_s: float | None = None) -> Any:
        reply = (await self.request(encode_command(command), 1, timeout_s))[0]
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def pipeline(self, commands: Sequence[Command], timeout_s: float | None = None) -> list[Any]:
        return await self.request(b"".join(encode_command(c) for c in commands), len(commands), timeout_s)

    async def request(self, data: bytes, count: int, timeout_s: float | None = None) -> list[Any]:
        owners = self._owners if self._owners is not None else await self._refresh(force=False)
        if count == 1:
            replies = await self._send_one(owners, command_head(data, find_end=False)[0], data, timeout_s)
            if (moved := redirection(replies[0])) is not None:
                replies[0] = await self._redirected(moved, data, timeout_s)
            return replies
        commands = split_commands(data, count)
        replies = await self._send_many(owners, commands, timeout_s)
        for index, reply in enumerate(replies):
            if (moved := redirection(reply)) is not None:
                replies[index] = await self._redirected(moved, commands[index][0], timeout_s)
        return replies

    def send_nowait(self, data: bytes, count: int) -> list[asyncio.Future[Any]] | None:
        """`RedisWire.send_nowait` when every command goes to one connected primary, else None (the caller
        then uses `request`). A MOVED among the replies makes the next call refresh the slot map."""
        if self._owners is None:
            return None
        nodes = {self._node_for(self._owners, head) for _, head in split_commands(data, count)}
        if len(nodes) != 1:
            return None
        futures = self._wire(nodes.pop()).send_nowait(data, count)
        if futures is not None:
            futures[-1].add_done_callback(lambda _: self._check_moved(futures))
        return futures

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
        wires, self._wires = list(self._wires.values()), {}
        for wire in wires:
            await wire.close()

    async def _send_one(self, owners: list[Node | None], args: list[bytes], data: bytes,
                        timeout_s: float | None) -> list[Any]:
        if args[0].upper() in BROADCAST:
            return [await self._broadcast(data, timeout_s)]
        return await self._on_node(self._node_for(owners, args), data, 1, timeout_s)

    async def _send_many(self, owners: list[Node | None], commands: list[tuple[bytes, list[bytes]]],
                         timeout_s: float | None) -> list[Any]:
        """Each node's share in one write, all nodes at once; replies in the callers' order."""
        shares: dict[Node, list[int]] = {}
        broadcast: list[int] = []
        for index, (_, head) in enumerate(commands):
            if head[0].upper() in BROADCAST:
                broadcast.append(index)
            else:
                shares.setdefault(self._node_for(owners, head), []).append(index)
        replies: list[Any] = [None] * len(commands)

        async def send(node: Node, indexes: list[int]) -> None:
            data = b"".join(commands[i][0] for i in indexes)
            for index, reply in zip(indexes, await self._on_node(node, data, len(indexes), timeout_s), strict=True):
                replies[index] = reply

        async def send_everywhere(index: int) -> None:
            replies[index] = await self._broadcast(commands[index][0], timeout_s)
        await asyncio.gather(*(send(node, indexes) for node, indexes in shares.items()),
                             *(send_everywhere(index) for index in broadcast))
        return replies

    async def _broadcast(self, data: bytes, timeout_s: float | None) -> Any:
        primaries = {node for node in self._owners or () if node is not None}
        replies = await asyncio.gather(*(self._on_node(node, data, 1, timeout_s) for node in sorted(primaries)))
        errors = [reply[0] for reply in replies if isinstance(reply[0], RedisError)]
        return errors[0] if errors else replies[0][0]

    async def _redirected(self, moved: tuple[str, int, Node], data: bytes, timeout_s: float | None) -> Any:
        """The reply of a command (`data`) sent again where a MOVED or ASK sent it (once)."""
        kind, slot, node = moved
        if kind == "ASK":
            return (await self._on_node(node, _ASKING + data, 2, timeout_s))[1]
        if self._owners is not None:
            self._owners[slot] = node
        self._refresh_soon()
        return (await self._on_node(node, data, 1, timeout_s))[0]

    async def _on_node(self, node: Node, data: bytes, count: int, timeout_s: float | None) -> list[Any]:
        try:
            return await self._wire(node).request(data, count, timeout_s)
        except (RedisError, OSError):
            self._refresh_soon()  # the node may be gone, its replica promoted: read the map again
            raise

    def _node_for(self, owners: list[Node | None], args: list[bytes]) -> Node:
        key = command_key(args)
        node = owners[key_slot(key)] if key is not None else next((n for n in owners if n is not None), None)
        if node is None:
            raise RedisConnectionError("redis cluster: no node serves this key's slot")
        return node

    def _wire(self, node: Node) -> RedisWire:
        wire = self._wires.get(node)
        if wire is None:
            endpoints = self._endpoints
            address = RedisAddress(host=node[0], port=node[1], path=None, tls=endpoints.tls,
                                   username=endpoints.username, password=endpoints.password, db=0)
            wire = self._wires[node] = RedisWire(address, **self._options)
        return wire

    def _check_moved(self, futures: list[asyncio.Future[Any]]) -> None:
        for future in futures:
            if not future.cancelled() and future.exception() is None and redirection(future.result()):
                self._refresh_soon()
                return

    def _refresh_soon(self) -> None:
        """Read the slot map again in the background, unless that is under way or was done just now."""
        if self._background is not None and not self._background.done():
            return
        if time.monotonic() - self._refreshed_at >= REFRESH_INTERVAL_S:
            self._refreshed_at = time.monotonic()
            self._background = asyncio.get_running_loop().create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(RedisError, OSError):  # the next call that needs the map tries again
            await self._refresh(force=True)

    async def _refresh(self, *, force: bool) -> list[Node | None]:
        """Read the slot map from the first node that answers (known primaries, then the seeds)."""
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            if self._owners is not None and not force:
                return self._owners
            candidates = list(dict.fromkeys([*(n for n in self._owners or () if n is not None),
                                             *self._endpoints.nodes]))
            failure: BaseException | None = None
            for node in candidates:
                try:
                    reply = await self._wire(node).call("CLUSTER", "SLOTS",
                                                        timeout_s=self._options["connect_timeout_s"])
                except (RedisError, OSError) as exc:
                    failure = exc
                    continue
                self._owners = slot_map(reply, node)
                self._refreshed_at = time.monotonic()
                return self._owners
            raise RedisConnectionError(f"redis cluster: no node answered CLUSTER SLOTS: {failure}")
