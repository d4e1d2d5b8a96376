"""API keys: what a key is, how secrets are made and hashed, and the store Protocol.

A client presents a *secret* (`sk-gw-` + 40 url-safe characters). The gateway never keeps it: a key
is stored under the SHA-256 hex of its secret (`secret_hash`), and the first 10 characters (`prefix`,
e.g. `sk-gw-a1b2`) are kept for display only. Lookup is by hash (one dict / one Redis GET), then the
stored hash is compared with `hmac.compare_digest` before the key is returned.

Stores (`MemoryKeyStore`, `RedisKeyStore`) hold no cache: `revoke` is effective on every replica at
the next `find`. `find` and `all` leave out expired keys (in Redis they also disappear by TTL shortly
after `expires_at`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
import time
from typing import Annotated, Any, Literal, Protocol

import msgspec

SECRET_PREFIX = "sk-gw-"  # noqa: S105 (a format marker, not a secret)
DISPLAY_PREFIX_CHARS = 10

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class KeyLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A key's limits; None means unlimited. See `gateway.limits` for the exact semantics."""

    requests_per_minute: NonNegative | None = None
    """Admissions in any sliding window (60 s in production)."""
    tokens_per_minute: NonNegative | None = None
    """Token bucket capacity, refilled at this many tokens per window."""
    max_concurrent: NonNegative | None = None
    """Requests admitted and not yet settled."""
    token_budget: NonNegative | None = None
    """Tokens per UTC `budget_period` (prompt + completion, as reported by the worker)."""
    budget_period: Literal["day", "month"] = "month"


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    """`key_` + 16 hex characters; what admin routes and logs name a key by."""
    prefix: str
    """The first characters of the secret, for display (`sk-gw-a1b2`)."""
    secret_hash: str
    """SHA-256 hex of the secret; the secret itself is never stored."""
    scope: Literal["admin", "user"] = "user"
    models: tuple[str, ...] = ("*",)
    """fnmatch globs of catalog model names this key may use."""
    limits: KeyLimits = KeyLimits()
    expires_at: float | None = None
    """Unix time after which the key is refused; None: never."""
    metadata: dict[str, str] = {}
    """Free-form labels: owner, team (the tenant), ..."""
    created_at: float
    cache_control: bool = True
    """May send `Cache-Control: no-cache` / `no-store` to bypass the response cache."""

    def allows_model(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    @property
    def tenant(self) -> str:
        """Whose data this key sees (cache scope, budgets): the `team` label, else the key itself."""
        return self.metadata.get("team") or self.id


def new_secret() -> str:
    """A fresh secret: `sk-gw-` + 40 url-safe random characters (240 bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(30)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secrets_match(a_hash: str, b_hash: str) -> bool:
    """Constant-time comparison of two secret hashes."""
    return hmac.compare_digest(a_hash.encode(), b_hash.encode())


def new_key(secret: str, **fields: Any) -> ApiKey:
    """An `ApiKey` for `secret`: fills `id`, `prefix`, `secret_hash` and `created_at` (unless given);
    other fields (`scope`, `models`, `limits`, `expires_at`, `metadata`) pass through."""
    fields.setdefault("id", "key_" + secrets.token_hex(8))
    fields.setdefault("created_at", time.time())
    return ApiKey(prefix=secret[:DISPLAY_PREFIX_CHARS], secret_hash=hash_secret(secret), **fields)


class KeyStore(Protocol):
    async def find(self, secret_hash: str) -> ApiKey | None:
        """The unexpired key whose secret hashes to `secret_hash`, or None."""
        ...

    async def add(self, key: ApiKey) -> None:
        """Store (or replace) `key`."""
        ...

    async def all(self) -> list[ApiKey]:
        """Every unexpired key, in no particular order."""
        ...

    async def revoke(self, key_id: str) -> bool:
        """Delete the key with this id; True if it existed."""
        ...

    async def close(self) -> None: ...
