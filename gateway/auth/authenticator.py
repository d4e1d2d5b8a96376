"""Who is calling: the API key a request presents, checked against the configured keys and the key
store; in open mode (no keys configured, loopback only) an anonymous caller identified by its address.

Keys are accepted as `Authorization: Bearer`, `x-api-key` and `api-key` (what OpenAI and Azure SDKs
send), hashed with SHA-256 and compared in constant time. Store lookups are cached for at most
`cache_ttl_s` (1 s), so a revocation reaches every replica within that, well inside 5 seconds. While the
store (Redis) is down, keys this replica saw in the last `stale_ttl_s` (10 min) keep working (nobody can
revoke them meanwhile either); other keys get 503 `store_unavailable`, never a guess.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.auth import ApiKey, KeyLimits, KeyStore, hash_secret, secrets_match
from gateway.errors import AuthenticationFailed, StoreUnavailable

_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    key: ApiKey | None
    """None for an anonymous caller (open mode)."""
    subject: str
    """What limits are counted against: `key:<id>`, or `ip:<address>` for anonymous callers."""
    limits: KeyLimits
    loopback: bool = False

    @property
    def is_admin(self) -> bool:
        """Admin keys; in open mode, loopback clients (the operator on the same machine)."""
        return self.key.scope == "admin" if self.key is not None else self.loopback

    @property
    def tenant(self) -> str:
        """Whose cache entries a request may see: the key's team (else the key); open mode shares one."""
        return self.key.tenant if self.key is not None else "anonymous"

    @property
    def may_bypass_cache(self) -> bool:
        return self.key is None or self.key.cache_control

    def may_use(self, model: str) -> bool:
        return self.key is None or self.key.allows_model(model)

    @property
    def limited(self) -> bool:
        limits = self.limits
        return any(v is not None for v in (limits.requests_per_minute, limits.tokens_per_minute,
                                           limits.max_concurrent, limits.token_budget))


def presented_secret(headers: Mapping[str, str]) -> str | None:
    """The key in `Authorization: Bearer …`, `x-api-key` or `api-key`, whichever comes first."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    for name in ("x-api-key", "api-key"):
        other = headers.get(name)
        if other and other.strip():
            return other.strip()
    return None


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(address: str | None) -> bool:
    return address is not None and (address in _LOOPBACK or address.startswith("127."))


class Authenticator:
    def __init__(self, *, configured: Iterable[ApiKey], store: KeyStore, open_mode: bool,
                 anonymous_limits: KeyLimits, cache_ttl_s: float = 1.0, stale_ttl_s: float = 600.0) -> None:
        self._configured = {key.secret_hash: key for key in configured}
        self._store = store
        self.open_mode = open_mode
        self._anonymous_limits = anonymous_limits
        self._cache_ttl_s = cache_ttl_s
        self._stale_ttl_s = stale_ttl_s
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}
        self._last_seen: dict[str, tuple[ApiKey, float]] = {}

    async def identify(self, headers: Mapping[str, str], client_address: str | None) -> Caller:
        loopback = is_loopback(client_address)
        if self.open_mode:
            return Caller(key=None, subject=f"ip:{client_address or 'unknown'}", limits=self._anonymous_limits,
                          loopback=loopback)
        secret = presented_secret(headers)
        if secret is None:
            raise AuthenticationFailed("You didn't provide an API key. Provide it as `Authorization: Bearer "
                                       "<key>` (or the `x-api-key` / `api-key` header).", code="missing_api_key")
        key = await self._find(hash_secret(secret))
        if key is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        if key.expired(time.time()):
            raise AuthenticationFailed("This API key has expired.", code="expired_api_key")
        return Caller(key=key, subject=f"key:{key.id}", limits=key.limits, loopback=loopback)

    async def _find(self, secret_hash: str) -> ApiKey | None:
        configured = self._configured.get(secret_hash)
        if configured is not None and secrets_match(configured.secret_hash, secret_hash):
            return configured
        now = time.monotonic()
        cached = self._cache.get(secret_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            key = await self._store.find(secret_hash)
        except StoreUnavailable:
            seen = self._last_seen.get(secret_hash)
            if seen is not None and seen[1] > now:
                return seen[0]
            raise
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
            self._last_seen.clear()
        self._cache[secret_hash] = (key, now + self._cache_ttl_s)
        if key is None:
            self._last_seen.pop(secret_hash, None)
        else:
            self._last_seen[secret_hash] = (key, now + self._stale_ttl_s)
        return key

    async def key_by_id(self, key_id: str) -> ApiKey | None:
        """The configured or stored unexpired key with this id (for sessions that name a key, as the
        console's does); None if there is none. Reads the store: not for the request path."""
        for key in self._configured.values():
            if key.id == key_id:
                return None if key.expired(time.time()) else key
        return next((key for key in await self._store.all() if key.id == key_id), None)

    async def has_admin_key(self) -> bool:
        """Whether any admin key exists (configured or stored). Reads the store: not for the request path."""
        if any(key.scope == "admin" for key in self._configured.values()):
            return True
        return not self.open_mode and any(key.scope == "admin" for key in await self._store.all())

    def forget_all(self) -> None:
        """Drop every cached lookup (after a revocation on this replica)."""
        self._cache.clear()
        self._last_seen.clear()
