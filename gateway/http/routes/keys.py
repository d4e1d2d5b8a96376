"""API keys over HTTP: `/admin/keys` (admin keys only; `/admin/keys/{id}/usage`: a key's use per day) and
`GET /v1/usage` (a key's own limits)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, QueryParameter

from gateway.auth import ApiKey, KeyLimits, KeyStore, UsageStore, new_key, new_secret
from gateway.auth.authenticator import Authenticator, Caller
from gateway.auth.key_usage import RETENTION_DAYS
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


class KeyChange(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """What may change on an existing key (the secret, id and scope never do)."""

    models: tuple[str, ...] | None = None
    limits: KeyLimits | None = None


_KEY_CHANGE_BODY = json_body(struct_schema(KeyChange), {"models": ["chat"], "limits": {"requests_per_minute": 120}})


async def create_key(store: KeyStore, raw: bytes) -> dict[str, Any]:
    """Create the key a JSON body describes (`NewKey`); its description and, this once, its secret."""
    spec = _decode_new_key(raw)
    expires = spec.expires_at.timestamp() if isinstance(spec.expires_at, dt.datetime) else spec.expires_at
    if spec.expires_in_days is not None:
        expires = time.time() + spec.expires_in_days * 86400
    secret = new_secret()
    key = new_key(secret, scope=spec.scope, models=spec.models, limits=spec.limits, expires_at=expires,
                  metadata=spec.metadata, cache_control=spec.cache_control)
    await store.add(key)
    return {**describe(key), "secret": secret}


async def revoke_key(store: KeyStore, authenticator: Authenticator, key_id: str) -> dict[str, Any]:
    if not await store.revoke(key_id):
        raise NotFound(f"No API key with id `{key_id}`.", param="key_id", code="key_not_found")
    authenticator.forget_all()
    return {"id": key_id, "revoked": True}


async def change_key(store: KeyStore, authenticator: Authenticator, key_id: str, raw: bytes) -> dict[str, Any]:
    """Replace a stored key's models and/or limits (a JSON `KeyChange`); effective on every replica
    within the authenticator's cache time, like a revocation."""
    try:
        change = msgspec.json.decode(raw or b"{}", type=KeyChange, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json") from None
    key = next((k for k in await store.all() if k.id == key_id), None)
    if key is None:
        raise NotFound(f"No API key with id `{key_id}`.", param="key_id", code="key_not_found")
    updated = msgspec.structs.replace(key, models=key.models if change.models is None else change.models,
                                      limits=key.limits if change.limits is None else change.limits)
    await store.add(updated)
    authenticator.forget_all()
    return describe(updated)


async def remaining_of(limits: LimitStore, caller: Caller) -> dict[str, Any] | None:
    """What is left of a caller's limits now (None: it has none)."""
    if not caller.limited:
        return None
    state = await limits.usage(caller.subject, caller.limits)
    return {"requests": state.requests_remaining, "requests_reset_s": state.requests_reset_s,
            "tokens": state.tokens_remaining, "tokens_reset_s": state.tokens_reset_s,
            "budget": state.budget_remaining}


USAGE_DAYS = 7
"""Days of usage shown unless `days` says otherwise."""
DaysParameter = Annotated[str | None, QueryParameter(
    name="days", required=False,
    description=f"How many UTC days, today included (1 to {RETENTION_DAYS}; default {USAGE_DAYS}).")]


async def usage_report(usage: UsageStore, key_id: str, days: str | None) -> dict[str, Any]:
    """`key_id`'s usage on each of the last `days` UTC days (oldest first; any id, a revoked key's too):
    requests, prompt and completion tokens, errors, in total and per model."""
    try:
        count = USAGE_DAYS if days is None or days == "" else int(days)
    except ValueError:
        count = 0
    if not 1 <= count <= RETENTION_DAYS:
        raise InvalidRequest(f"`days` is a whole number from 1 to {RETENTION_DAYS}.", param="days")
    rows = await usage.days(key_id, count)
    return {"object": "list", "key_id": key_id, "days": count, "data": msgspec.to_builtins(rows)}


def keys_routes(store: KeyStore, limits: LimitStore, authenticator: Authenticator,
                usage_store: UsageStore) -> list[HTTPRouteHandler]:
    @post("/admin/keys", status_code=201, summary="Create an API key (its secret is shown once)",
          operation_class=with_body(_NEW_KEY_BODY))
    async def create(request: Request[Any, Any, Any]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await create_key(store, await request.body())

    @get("/admin/keys", summary="List API keys")
    async def list_keys(request: Request[Any, Any, Any]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        keys = sorted(await store.all(), key=lambda k: k.created_at)
        return {"object": "list", "data": [describe(k) for k in keys]}

    @delete("/admin/keys/{key_id:str}", status_code=200, summary="Revoke an API key")
    async def revoke(request: Request[Any, Any, Any], key_id: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await revoke_key(store, authenticator, key_id)

    @patch("/admin/keys/{key_id:str}", status_code=200, summary="Change a key's models or limits",
           operation_class=with_body(_KEY_CHANGE_BODY))
    async def change(request: Request[Any, Any, Any], key_id: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await change_key(store, authenticator, key_id, await request.body())

    @get("/admin/keys/{key_id:str}/usage", summary="A key's usage per UTC day",
         description="Requests, prompt and completion tokens and errors (4xx, 5xx, or the client left) of the "
                     "key, each day and per model: what every replica counted, reaching Redis within "
                     "GATEWAY_USAGE_FLUSH_SECONDS (this replica's own counts at once).")
    async def key_usage(request: Request[Any, Any, Any], key_id: FromPath[str], days: DaysParameter = None
                        ) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await usage_report(usage_store, key_id, days)

    @get("/v1/usage", summary="The calling key's limits and what is left of them")
    async def usage(request: Request[Any, Any, Any]) -> dict[str, Any]:
        caller = await caller_of(request, authenticator)
        return {"key": describe(caller.key) if caller.key else None, "subject": caller.subject,
                "limits": msgspec.to_builtins(caller.limits), "remaining": await remaining_of(limits, caller)}

    return [create, list_keys, revoke, change, key_usage, usage]
