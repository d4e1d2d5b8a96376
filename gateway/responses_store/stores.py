"""Kept responses, scoped to a tenant: a response is found only by the tenant (the key's team, else the
key) whose request made it, so another key or team never reads, continues or deletes it.

A kept response holds the Response object as the client got it (for `GET /v1/responses/{id}`) and the
whole conversation of its turn as chat messages (the input expanded through `previous_response_id`, then
the answer), so that continuing it is one read, whichever replica answers.

Redis layout (`prefix` defaults to `llmgw:`):

    llmgw:response:<tenant>:<response id>   string  the StoredResponse, msgspec JSON, with a TTL (PX)

Response ids never contain `:` (the gateway makes them, and refuses any other), so keys cannot collide.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, RedisClient, translate_redis_errors
from gateway.shared_state.redis_json_store import RedisJsonStore


class StoredResponse(msgspec.Struct, kw_only=True):
    response: dict[str, Any]
    """The Response object as it was answered."""
    messages: list[dict[str, Any]]
    """The turn's conversation as chat messages (without its `instructions`, which a continuation does
    not inherit): what `previous_response_id` prepends."""
    expires_at: float


class ResponseStore(Protocol):
    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        """The tenant's live response, or None (never was, another tenant's, deleted, or expired)."""
        ...

    async def put(self, tenant: str, response_id: str, stored: StoredResponse) -> None:
        """Keep `stored` until its `expires_at`."""
        ...

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Forget the response; True if the tenant had it."""
        ...

    async def close(self) -> None: ...


class MemoryResponseStore:
    """Responses in this process: the embedded default. At most `max_responses` (the oldest go first);
    `clock`: unix time, for expiry."""

    def __init__(self, *, max_responses: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._responses: OrderedDict[tuple[str, str], StoredResponse] = OrderedDict()
        self._max_responses = max_responses
        self._clock = clock

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        stored = self._responses.get((tenant, response_id))
        if stored is None:
            return None
        if stored.expires_at <= self._clock():
            del self._responses[(tenant, response_id)]
            return None
        return msgspec.structs.replace(stored, messages=list(stored.messages))

    async def put(self, tenant: str, response_id: str, stored: StoredResponse) -> None:
        self._responses[(tenant, response_id)] = stored
        self._responses.move_to_end((tenant, response_id))
        while len(self._responses) > self._max_responses:
            self._responses.popitem(last=False)

    async def delete(self, tenant: str, response_id: str) -> bool:
        live = await self.get(tenant, response_id) is not None
        self._responses.pop((tenant, response_id), None)
        return live

    async def close(self) -> None:
        pass


class RedisResponseStore(RedisJsonStore[StoredResponse]):
    """A `ResponseStore` on `redis` (built by `gateway.shared_state.redis_client.connect_redis`); the
    keyword arguments are `RedisJsonStore`'s."""

    def __init__(self, redis: RedisClient, prefix: str = DEFAULT_KEY_PREFIX, **options: Any) -> None:
        super().__init__(redis, StoredResponse, prefix, **options)

    def _name(self, tenant: str, response_id: str) -> str:
        return f"{self._prefix}response:{tenant}:{response_id}"

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        return await self._read(self._name(tenant, response_id), "get stored response")

    async def put(self, tenant: str, response_id: str, stored: StoredResponse) -> None:
        ttl_ms = max(1, int((stored.expires_at - self._clock()) * 1000))
        with translate_redis_errors("store response"):
            await self._redis.set(self._name(tenant, response_id), msgspec.json.encode(stored), px=ttl_ms)

    async def delete(self, tenant: str, response_id: str) -> bool:
        return await self._remove(self._name(tenant, response_id), "delete stored response")
