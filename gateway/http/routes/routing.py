"""`POST /v1/routing/explain`: the routing decision for a request, without calling a worker."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler

from gateway.auth.authenticator import Authenticator
from gateway.http.callers import caller_of
from gateway.http.openapi_bodies import surface_body, with_body
from gateway.inference.model_selection import choose_model
from gateway.surfaces import CHAT_COMPLETIONS
from gateway.workers.active_catalog import CatalogHolder


def routing_routes(runtimes: CatalogHolder, authenticator: Authenticator) -> list[HTTPRouteHandler]:
    @post("/v1/routing/explain", status_code=200, summary="Explain how a chat request would be routed",
          operation_class=with_body(surface_body(CHAT_COMPLETIONS)))
    async def explain(request: Request[Any, Any, Any]) -> dict[str, Any]:
        await caller_of(request, authenticator)
        inference = CHAT_COMPLETIONS.decode(await request.body())
        runtime = runtimes.current
        choice = choose_model(runtime, inference)
        now = asyncio.get_running_loop().time()
        pool = runtime.pool
        chain = []
        for model in (choice.model, *choice.fallbacks):
            placements = pool.placements(model)
            eligible, panic = pool.outlier.eligible([p.name for p in placements], now, down=pool.health.down())
            spec = runtime.catalog.model(model)
            chain.append({
                "model": model,
                "policy": spec.policy if spec else None,
                "panic_mode": panic,
                "workers": [{"name": p.name, "upstream_model": p.upstream_model, "eligible": p.name in eligible,
                             "in_flight": p.state.in_flight, "waiting": p.state.load.waiting,
                             "kv_usage": p.state.load.kv_usage} for p in placements],
            })
        return {"model": choice.model, "route": choice.route, "fallbacks": list(choice.fallbacks),
                "match_on": runtime.chooser.match_on, "candidates": chain}

    return [explain]
