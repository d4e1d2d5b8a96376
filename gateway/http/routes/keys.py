"""API keys over HTTP: `/admin/keys` (admin keys only) and `GET /v1/usage` (a key's own limits)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Literal

import msgspec
from litestar import Request, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.auth import ApiKey, KeyLimits, KeyStore, new_key, new_secret
from gateway.auth.authenticator import Authenticator
from gateway.errors import InvalidRequest, NotFound
from gateway.http.callers import admin_of, caller_of
from gateway.http.openapi_bodies import json_body, struct_schema, with_body
from gateway.limits import LimitStore


class NewKey(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    scope: Literal["admin", "user"] = "user"
    models: tuple[str, ...] = ("*",)
    limits: KeyLimits = KeyLimits()
    expires_at: dt.datetime | float | None = None
    expires_in_days: float | None = None
    metadata: dict[str, str] = {}
    cache_control: bool = True


_NEW_KEY_BODY = json_body(struct_schema(NewKey), {"scope": "user", "models": ["chat"], "expires_in_days": 30,
                                                  "limits": {"requests_per_minute": 60}})


def describe(key: ApiKey) -> dict[str, Any]:
    """A key as admins see it: never its secret or hash."""
    return {"id": key.id, "prefix": key.prefix, "scope": key.scope, "models": list(key.models),
            "limits": msgspec.to_builtins(key.limits), "expires_at": key.expires_at, "metadata": key.metadata,
            "created_at": key.created_at, "cache_control": key.cache_control}


def _decode_new_key(raw: bytes) -> NewKey:
    try:
        return msgspec.json.decode(raw or b"{}", type=NewKey, strict=False)
    except msgspec.ValidationError as exc:
        reason, at, where = str(exc).rpartition(" - at `$.")
        raise InvalidRequest(reason or str(exc), param=where.rstrip("`") if at else None) from None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for invalid UTF-8
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json") from None


def keys_routes(store: KeyStore, limits: LimitStore, authenticator: Authenticator) -> list[HTTPRouteHandler]:
    @post("/admin/keys", status_code=201, summary="Create an API key (its secret is shown once)",
          operation_class=with_body(_NEW_KEY_BODY))
    async def create_key(request: Request[Any, Any, Any]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        spec = _decode_new_key(await request.body())
        expires = spec.expires_at.timestamp() if isinstance(spec.expires_at, dt.datetime) else spec.expires_at
        if spec.expires_in_days is not None:
            expires = time.time() + spec.expires_in_days * 86400
        secret = new_secret()
        key = new_key(secret, scope=spec.scope, models=spec.models, limits=spec.limits, expires_at=expires,
                      metadata=spec.metadata, cache_control=spec.cache_control)
        await store.add(key)
        return {**describe(key), "secret": secret}

    @get("/admin/keys", summary="List API keys")
    async def list_keys(request: Request[Any, Any, Any]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        keys = sorted(await store.all(), key=lambda k: k.created_at)
        return {"object": "list", "data": [describe(k) for k in keys]}

    @delete("/admin/keys/{key_id:str}", status_code=200, summary="Revoke an API key")
    async def revoke_key(request: Request[Any, Any, Any], key_id: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        if not await store.revoke(key_id):
            raise NotFound(f"No API key with id `{key_id}`.", param="key_id", code="key_not_found")
        authenticator.forget_all()
        return {"id": key_id, "revoked": True}

    @get("/v1/usage", summary="The calling key's limits and what is left of them")
    async def usage(request: Request[Any, Any, Any]) -> dict[str, Any]:
        caller = await caller_of(request, authenticator)
        state = await limits.usage(caller.subject, caller.limits) if caller.limited else None
        remaining = None if state is None else {
            "requests": state.requests_remaining, "requests_reset_s": state.requests_reset_s,
            "tokens": state.tokens_remaining, "tokens_reset_s": state.tokens_reset_s,
            "budget": state.budget_remaining}
        return {"key": describe(caller.key) if caller.key else None, "subject": caller.subject,
                "limits": msgspec.to_builtins(caller.limits), "remaining": remaining}

    return [create_key, list_keys, revoke_key, usage]
