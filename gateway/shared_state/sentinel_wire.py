"""The hot path's Redis client for a primary that Sentinel names (`redis+sentinel://`).

Every (re)connection asks the Sentinels where the primary is (SENTINEL GET-MASTER-ADDR-BY-NAME, the
first that answers; it is then asked first next time) and checks the server it reaches says ROLE
master (a Sentinel may lag behind a failover). A failover is followed because the old primary's
connections break (Sentinel kills them when it turns the server into a replica, or the server is gone)
and the next call connects again; a READONLY reply (a write reached a replica) drops the connection too.
Between failovers it is a plain `RedisWire`: nothing is added to a call but a look at error replies.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.shared_state.redis_urls import Node, RedisEndpoints
from gateway.shared_state.redis_wire import RedisAddress, RedisWire, _Protocol, encode_command


class SentinelWire(RedisWire):
    """A `RedisWire` whose server is the primary the Sentinels of `endpoints` name for its service."""

    def __init__(self, endpoints: RedisEndpoints, *, connect_timeout_s: float = 0.5, stale_after_s: float = 5.0,
                 client_name: str = "llm-gateway") -> None:
        self._endpoints = endpoints
        self._sentinels = list(endpoints.nodes)
        super().__init__(self._address(("", 0)), connect_timeout_s=connect_timeout_s,
                         stale_after_s=stale_after_s, client_name=client_name)

    async def request(self, data: bytes, count: int, timeout_s: float | None = None) -> list[Any]:
        replies = await super().request(data, count, timeout_s)
        for reply in replies:
            if isinstance(reply, ResponseError) and str(reply).startswith("READONLY"):
                self._drop("a replica answered READONLY: the primary moved")
                break
        return replies

    async def _connect(self) -> _Protocol:
        self._target = self._address(await self.primary_address())
        protocol = await super()._connect()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                role = await self._send(protocol, encode_command(("ROLE",)), 1)[0]
        except BaseException as exc:
            protocol.abort(RedisConnectionError(f"redis sentinel: ROLE failed: {exc!r}"))
            raise RedisConnectionError(f"redis sentinel: the primary did not answer ROLE: {exc!r}") from exc
        if not isinstance(role, list) or role[0] != b"master":
            protocol.abort(RedisConnectionError("not the primary"))
            raise RedisConnectionError(f"redis sentinel: {self._target.host}:{self._target.port} is not the primary "
                                       f"of {self._endpoints.service!r} (yet)")
        return protocol

    async def primary_address(self) -> Node:
        """Where the Sentinels say the primary is (the first Sentinel that knows)."""
        failures = []
        for sentinel in list(self._sentinels):
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    reply = await self._ask(sentinel)
            except (OSError, TimeoutError, ResponseError) as exc:
                failures.append(f"{sentinel[0]}:{sentinel[1]}: {type(exc).__name__}")
                continue
            if reply is None:
                failures.append(f"{sentinel[0]}:{sentinel[1]}: does not know {self._endpoints.service!r}")
                continue
            self._sentinels.remove(sentinel)
            self._sentinels.insert(0, sentinel)  # ask the one that knew first next time
            return reply[0].decode(), int(reply[1])
        raise RedisConnectionError(f"redis sentinel: no primary for {self._endpoints.service!r}: "
                                   + "; ".join(failures))

    async def _ask(self, sentinel: Node) -> Any:
        reader, writer = await asyncio.open_connection(*sentinel)
        try:
            commands = []
            if self._endpoints.sentinel_password is not None:
                credentials = (self._endpoints.sentinel_username, self._endpoints.sentinel_password)
                commands.append(encode_command(("AUTH", *(c for c in credentials if c is not None))))
            commands.append(encode_command(("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self._endpoints.service or "")))
            writer.write(b"".join(commands))
            parser = hiredis.Reader(replyError=ResponseError)
            replies: list[Any] = []
            while len(replies) < len(commands):
                chunk = await reader.read(4096)
                if not chunk:
                    raise ConnectionResetError("sentinel closed the connection")
                parser.feed(chunk)
                while (reply := parser.gets()) is not False:
                    replies.append(reply)
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
            return replies[-1]
        finally:
            writer.close()

    def _drop(self, why: str) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            protocol.abort(RedisConnectionError(why))

    def _address(self, node: Node) -> RedisAddress:
        endpoints = self._endpoints
        return RedisAddress(host=node[0], port=node[1], path=None, tls=endpoints.tls, username=endpoints.username,
                            password=endpoints.password, db=endpoints.db)
