"""The console's JSON API for what the gateway saw: the overview's live figures and the captured
interactions (browse, rate, export), under `/console/api`."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import msgspec
from litestar import Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.auth.authenticator import Caller
from gateway.capture import dataset
from gateway.capture.interactions import InteractionCapture
from gateway.errors import InvalidRequest, NotFound
from gateway.http.console.captured import CaptureFilter, browse
from gateway.http.console.guard import AnyRequest, ConsoleGuard
from gateway.http.console.metrics_window import MetricsWindow
from gateway.http.routes.feedback import decode_feedback
from gateway.workers.active_catalog import CatalogHolder


def overview_routes(guard: ConsoleGuard, window: MetricsWindow, runtimes: CatalogHolder) -> list[HTTPRouteHandler]:
    @get("/api/overview", include_in_schema=False)
    async def overview(request: AnyRequest) -> dict[str, Any]:
        await guard.session(request)
        pool = runtimes.current.pool
        down = pool.health.down()
        workers = {w.name: {"healthy": w.name not in down, "in_flight": w.in_flight} for w in pool.workers.values()}
        return {**window.overview(), "live_workers": workers}

    return [overview]


def _acting_for(caller_key: Caller, tenant: str) -> Caller:
    """The admin, acting for `tenant`: feedback is recorded under the interaction's tenant (so datasets
    find it) and the admin key's id (so the record says who rated)."""
    key = caller_key.key
    assert key is not None
    return Caller(key=msgspec.structs.replace(key, metadata={**key.metadata, "team": tenant}),
                  subject=caller_key.subject, limits=caller_key.limits)


def capture_routes(guard: ConsoleGuard, capture: InteractionCapture) -> list[HTTPRouteHandler]:
    @get("/api/captures", include_in_schema=False)
    async def list_captures(request: AnyRequest) -> dict[str, Any]:
        await guard.session(request)
        query = request.query_params
        try:
            limit = max(1, min(200, int(query.get("limit") or 50)))
        except ValueError:
            raise InvalidRequest("`limit` is a number.", param="limit") from None
        wanted = CaptureFilter(model=query.get("model") or None, key_id=query.get("key_id") or None,
                               rating=query.get("rating") or None, limit=limit)
        return {"data": await asyncio.to_thread(browse, capture.directory, wanted)}

    @post("/api/captures/{request_id:str}/feedback", status_code=201, include_in_schema=False)
    async def rate(request: AnyRequest, request_id: FromPath[str]) -> dict[str, Any]:
        """`{"tenant": ..., "rating": 5, "label": ..., "comment": ...}`: checked as `/v1/feedback` checks it."""
        session = await guard.session(request)
        try:
            raw = msgspec.json.decode(await request.body() or b"{}")
        except (msgspec.DecodeError, UnicodeDecodeError):
            raw = None
        if not isinstance(raw, dict) or not isinstance(raw.get("tenant"), str):
            raise InvalidRequest("Give the interaction's `tenant`.", param="tenant")
        tenant = raw.pop("tenant")
        spec = decode_feedback(msgspec.json.encode({**raw, "request_id": request_id}))
        admin = Caller(key=session.key, subject=f"key:{session.key.id}", limits=session.key.limits)
        written = await capture.add_feedback(_acting_for(admin, tenant), request_id, rating=spec.rating,
                                             label=spec.label, comment=spec.comment)
        if written is None:
            raise NotFound(f"No captured interaction `{request_id}`.", param="request_id",
                           code="interaction_not_found")
        guard.log(request, session, "capture_rate", target=request_id, rating=spec.rating)
        return {"request_id": request_id, "rating": spec.rating, "label": spec.label, "created": written["timestamp"]}

    @get("/api/captures/export", include_in_schema=False)
    async def export(request: AnyRequest) -> Response[bytes]:
        """A fine-tuning set (`format`: chat-jsonl or preference-jsonl; `min_rating`; `include_truncated`:
        answers cut by `max_tokens` too), as a download: what `llm-gateway dataset export` writes."""
        session = await guard.session(request)
        fmt = request.query_params.get("format") or "chat-jsonl"
        if fmt not in dataset.formats():
            raise InvalidRequest(f"`format` is one of {', '.join(dataset.formats())}.", param="format")
        min_rating = request.query_params.get("min_rating")
        try:
            selection = dataset.Selection(min_rating=int(min_rating) if min_rating else None,
                                          include_truncated=request.query_params.get("include_truncated") == "on")
        except ValueError:
            raise InvalidRequest("`min_rating` is a number.", param="min_rating") from None

        def build() -> bytes:
            out = io.BytesIO()
            dataset.export(dataset.load(capture.directory), fmt, selection, out.write)
            return out.getvalue()

        body = await asyncio.to_thread(build)
        guard.log(request, session, "capture_export", format=fmt, bytes=len(body))
        return Response(body, media_type="application/x-ndjson",
                        headers={"content-disposition": f'attachment; filename="{fmt}.jsonl"'})

    return [list_captures, rate, export]
