"""API keys in Redis, shared by every replica.

Layout (`prefix` defaults to `llmgw:`):

    llmgw:key:<sha256 of secret>   string  the ApiKey, msgspec JSON (no secret in it)
    llmgw:keyid:<key id>           string  the secret hash, to revoke by id

Both have no TTL unless the key has `expires_at`; then both expire `EXPIRY_GRACE_S` after it (`find`
refuses an expired key from `expires_at` on; the TTL only cleans up). No cache: `revoke` deletes both
entries, so the next `find` on any replica returns None.

The two entries of a key live in different hash slots of a Redis Cluster (one is found by secret, the
other by id), so no command or transaction touches both: `add` writes them in an order that never leaves
a usable secret that `revoke` cannot reach (the id's entry first, then the old secret's entry is
removed, then the new one is written); an `add` cut short leaves at worst a key that does not work
yet, and doing it again completes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from gateway.auth.api_keys import ApiKey, secrets_match
from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, RedisClient, translate_redis_errors

EXPIRY_GRACE_S = 60.0
SCAN_BATCH = 500


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisKeyStore:
    """A `KeyStore` on `redis` (built by `gateway.shared_state.redis_client.connect_redis`). `close_client`: close
    `redis` in `close` (False when the client is shared with other stores and closed by its owner)."""

    def __init__(self, redis: RedisClient, prefix: str = DEFAULT_KEY_PREFIX, *,
                 close_client: bool = True, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._close_client = close_client
        self._prefix = prefix
        self._clock = clock
        self._decoder = msgspec.json.Decoder(ApiKey)

    def _record(self, secret_hash: str) -> str:
        return f"{self._prefix}key:{secret_hash}"

    def _by_id(self, key_id: str) -> str:
        return f"{self._prefix}keyid:{key_id}"

    def _decode(self, raw: bytes | str | None, now: float) -> ApiKey | None:
        if raw is None:
            return None
        key = self._decoder.decode(raw)
        return None if key.expired(now) else key

    async def find(self, secret_hash: str) -> ApiKey | None:
        with translate_redis_errors("find key"):
            raw = await self._redis.get(self._record(secret_hash))
        key = self._decode(raw, self._clock())
        if key is None or not secrets_match(key.secret_hash, secret_hash):
            return None
        return key

    async def add(self, key: ApiKey) -> None:
        expire_at_ms = None if key.expires_at is None else int((key.expires_at + EXPIRY_GRACE_S) * 1000)
        with translate_redis_errors("add key"):
            previous = await self._redis.set(self._by_id(key.id), key.secret_hash, pxat=expire_at_ms, get=True)
            if isinstance(previous, bytes | str) and _text(previous) != key.secret_hash:
                await self._redis.delete(self._record(_text(previous)))
            await self._redis.set(self._record(key.secret_hash), msgspec.json.encode(key), pxat=expire_at_ms)

    async def all(self) -> list[ApiKey]:
        now = self._clock()
        keys: list[ApiKey] = []
        with translate_redis_errors("list keys"):
            names = [name async for name in self._redis.scan_iter(match=f"{self._prefix}key:*", count=SCAN_BATCH)]
            for start in range(0, len(names), SCAN_BATCH):
                async with self._redis.pipeline(transaction=False) as pipe:  # a cluster's keys span slots
                    for name in names[start:start + SCAN_BATCH]:
                        pipe.get(name)
                    batch = await pipe.execute()
                for raw in batch:
                    key = self._decode(raw, now)
                    if key is not None:
                        keys.append(key)
        return keys

    async def revoke(self, key_id: str) -> bool:
        with translate_redis_errors("revoke key"):
            secret_hash = await self._redis.getdel(self._by_id(key_id))
            if secret_hash is None:
                return False
            await self._redis.delete(self._record(_text(secret_hash)))
        return True

    async def close(self) -> None:
        if not self._close_client:
            return
        with translate_redis_errors("close"):
            await self._redis.aclose()
