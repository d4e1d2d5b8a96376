"""The console's JSON API for keys, the routing playground (explain, route cases) and catalog reloads,
under `/console/api`.

Each handler checks the session (and, for changes, the origin and CSRF token: `ConsoleGuard.session`),
then calls the very function the admin API calls (`gateway.http.routes.keys`, `.routing`, `.admin`),
and logs the change with the admin key's id.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from litestar import delete, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.auth import ApiKey, KeyStore, UsageStore
from gateway.auth.authenticator import Authenticator, Caller
from gateway.errors import InvalidRequest
from gateway.http.console.guard import AnyRequest, ConsoleGuard
from gateway.http.routes.admin import reload_catalog
from gateway.http.routes.keys import (
    DaysParameter,
    change_key,
    create_key,
    describe,
    remaining_of,
    revoke_key,
    usage_report,
)
from gateway.http.routes.routing import explain_routing
from gateway.inference.route_cases import CASES_FILE, check_route_cases, parse_route_cases
from gateway.limits import LimitStore
from gateway.surfaces import ANTHROPIC_MESSAGES, CHAT_COMPLETIONS, Surface
from gateway.surfaces.responses import RESPONSES
from gateway.workers.active_catalog import CatalogHolder

PLAYGROUND_SURFACES: dict[str, Surface] = {"chat": CHAT_COMPLETIONS, "responses": RESPONSES,
                                           "messages": ANTHROPIC_MESSAGES}


async def _key_row(limits: LimitStore, key: ApiKey) -> dict[str, Any]:
    caller = Caller(key=key, subject=f"key:{key.id}", limits=key.limits)
    return {**describe(key), "remaining": await remaining_of(limits, caller)}


def key_routes(guard: ConsoleGuard, store: KeyStore, limits: LimitStore, authenticator: Authenticator,
               usage: UsageStore) -> list[HTTPRouteHandler]:
    @get("/api/keys", include_in_schema=False)
    async def list_keys(request: AnyRequest) -> dict[str, Any]:
        await guard.session(request)
        keys = sorted(await store.all(), key=lambda k: k.created_at)
        return {"data": [await _key_row(limits, k) for k in keys]}

    @post("/api/keys", status_code=201, include_in_schema=False)
    async def create(request: AnyRequest) -> dict[str, Any]:
        session = await guard.session(request)
        created = await create_key(store, await request.body())
        guard.log(request, session, "key_create", target=created["id"], scope=created["scope"])
        return created

    @patch("/api/keys/{key_id:str}", include_in_schema=False)
    async def change(request: AnyRequest, key_id: FromPath[str]) -> dict[str, Any]:
        session = await guard.session(request)
        changed = await change_key(store, authenticator, key_id, await request.body())
        guard.log(request, session, "key_change", target=key_id)
        return changed

    @delete("/api/keys/{key_id:str}", status_code=200, include_in_schema=False)
    async def revoke(request: AnyRequest, key_id: FromPath[str]) -> dict[str, Any]:
        session = await guard.session(request)
        revoked = await revoke_key(store, authenticator, key_id)
        guard.log(request, session, "key_revoke", target=key_id)
        return revoked

    @get("/api/keys/{key_id:str}/usage", include_in_schema=False)
    async def key_usage(request: AnyRequest, key_id: FromPath[str], days: DaysParameter = None) -> dict[str, Any]:
        await guard.session(request)
        return await usage_report(usage, key_id, days)

    return [list_keys, create, change, revoke, key_usage]


class PlaygroundRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    surface: str
    body: dict[str, Any]


class RouteCasesText(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    text: str


def playground_routes(guard: ConsoleGuard, runtimes: CatalogHolder) -> list[HTTPRouteHandler]:
    @post("/api/explain", status_code=200, include_in_schema=False)
    async def explain(request: AnyRequest) -> dict[str, Any]:
        """`{"surface": "chat" | "responses" | "messages", "body": {...}}`: how it would be routed now.
        A POST because it carries a body; it changes nothing, but is checked like a change all the same."""
        await guard.session(request)
        try:
            asked = msgspec.json.decode(await request.body(), type=PlaygroundRequest)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise InvalidRequest("Give `surface` and `body` (a request of that surface).") from None
        surface = PLAYGROUND_SURFACES.get(asked.surface)
        if surface is None:
            raise InvalidRequest(f"`surface` is one of {', '.join(PLAYGROUND_SURFACES)}.", param="surface")
        return {"surface": asked.surface,
                **explain_routing(runtimes, surface.decode(msgspec.json.encode(asked.body)))}

    @get("/api/route-cases", include_in_schema=False)
    async def route_cases_file(request: AnyRequest) -> dict[str, Any]:
        """The catalog's route cases (`route_cases.yaml` beside the catalog file), to run or edit."""
        await guard.session(request)
        path = None if runtimes.source is None else Path(runtimes.source).parent / CASES_FILE
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8") if path is not None else None
        except OSError:
            text = None
        return {"path": None if text is None else str(path), "text": text}

    @post("/api/route-cases", status_code=200, include_in_schema=False)
    async def run_route_cases(request: AnyRequest) -> dict[str, Any]:
        """`{"text": <route cases YAML>}`, checked against the catalog in force now."""
        await guard.session(request)
        try:
            text = msgspec.json.decode(await request.body(), type=RouteCasesText).text
            cases = parse_route_cases(text)
        except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidRequest(f"Give `text`, route cases in YAML: {exc}", param="text") from None
        ok, lines = check_route_cases(runtimes.current, cases)
        return {"ok": ok, "lines": lines}

    @post("/api/reload", status_code=200, include_in_schema=False)
    async def reload(request: AnyRequest) -> dict[str, Any]:
        session = await guard.session(request)
        reloaded = reload_catalog(runtimes)
        guard.log(request, session, "catalog_reload", target=runtimes.source)
        return reloaded

    return [explain, route_cases_file, run_route_cases, reload]
