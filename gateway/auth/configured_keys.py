"""The keys an operator configures: `LLM_API_KEY` (a user key, as in the UpCoach stack),
`GATEWAY_ADMIN_KEY` (an admin key) and `GATEWAY_KEYS_FILE` (hashes, scopes, models and limits).
Keys created through the admin API live in the key store instead (Redis, or memory when embedded).

A keys file holds only hashes, never secrets (`llm-gateway keys hash` prints one):

    keys:
      - id: key_mobile_app
        secret_hash: 3f1c…            # SHA-256 hex of the secret
        scope: user                   # or admin
        models: ["mistral", "llama3.2:*"]
        limits: {requests_per_minute: 60, tokens_per_minute: 20000, max_concurrent: 4,
                 token_budget: 1000000, budget_period: month}
        expires_at: 2027-01-01T00:00:00Z
        metadata: {owner: mobile, team: upcoach}
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

import msgspec
import yaml

from gateway.auth import ApiKey, KeyLimits, new_key
from gateway.settings import Settings

_SHA256 = re.compile(r"[0-9a-f]{64}")


class KeysFileError(ValueError):
    pass


class _FileKey(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: str
    secret_hash: str
    scope: Literal["admin", "user"] = "user"
    models: tuple[str, ...] = ("*",)
    limits: KeyLimits = KeyLimits()
    expires_at: dt.datetime | float | None = None
    metadata: dict[str, str] = {}
    cache_control: bool = True


class _KeysFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    keys: tuple[_FileKey, ...] = ()


def load_keys_file(path: str) -> list[ApiKey]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        parsed = msgspec.convert(data, _KeysFile, strict=False)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        raise KeysFileError(f"keys file {path}: {exc}") from None
    keys = []
    for i, entry in enumerate(parsed.keys):
        if not _SHA256.fullmatch(entry.secret_hash):
            raise KeysFileError(f"keys file {path}: $.keys[{i}].secret_hash: expected 64 lowercase hex "
                                "characters (the SHA-256 of the secret; `llm-gateway keys hash` prints it)")
        expires = entry.expires_at.timestamp() if isinstance(entry.expires_at, dt.datetime) else entry.expires_at
        keys.append(ApiKey(id=entry.id, prefix="(file)", secret_hash=entry.secret_hash, scope=entry.scope,
                           models=entry.models, limits=entry.limits, expires_at=expires,
                           metadata=entry.metadata, created_at=0.0, cache_control=entry.cache_control))
    ids = [k.id for k in keys]
    if len(set(ids)) != len(ids):
        raise KeysFileError(f"keys file {path}: key ids must be unique")
    return keys


def configured_keys(settings: Settings) -> list[ApiKey]:
    keys: list[ApiKey] = []
    if settings.api_key:
        rpm = settings.rate_limit_rpm or None
        keys.append(new_key(settings.api_key, id="key_llm_api_key", scope="user", created_at=0.0,
                            limits=KeyLimits(requests_per_minute=rpm), metadata={"source": "LLM_API_KEY"}))
    if settings.admin_key:
        keys.append(new_key(settings.admin_key, id="key_admin", scope="admin", created_at=0.0,
                            metadata={"source": "GATEWAY_ADMIN_KEY"}))
    if settings.keys_file:
        keys.extend(load_keys_file(settings.keys_file))
    return keys


def keys_required(settings: Settings) -> bool:
    """Open mode (no keys) only when no key source is configured."""
    return bool(settings.api_key or settings.admin_key or settings.keys_file)
