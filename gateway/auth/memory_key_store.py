"""API keys in a dict: the embedded (single-process) `KeyStore`."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.auth.api_keys import ApiKey, secrets_match


class MemoryKeyStore:
    """Keys by secret hash, in this process only. `clock`: unix time, for expiry."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._by_hash: dict[str, ApiKey] = {}
        self._clock = clock

    async def find(self, secret_hash: str) -> ApiKey | None:
        key = self._by_hash.get(secret_hash)
        if key is None or not secrets_match(key.secret_hash, secret_hash) or key.expired(self._clock()):
            return None
        return key

    async def add(self, key: ApiKey) -> None:
        for old in [k for k in self._by_hash.values() if k.id == key.id]:
            del self._by_hash[old.secret_hash]
        self._by_hash[key.secret_hash] = key

    async def all(self) -> list[ApiKey]:
        now = self._clock()
        return [key for key in self._by_hash.values() if not key.expired(now)]

    async def revoke(self, key_id: str) -> bool:
        for key in list(self._by_hash.values()):
            if key.id == key_id:
                del self._by_hash[key.secret_hash]
                return True
        return False

    async def close(self) -> None:
        pass
