"""`POST /v1/routing/explain`: the routing decision for a request, without calling a worker: the model
and why, then for each model of the chain the worker its policy would choose now, the rule that decided,
and every worker's load and score as the policy weighed them. Explaining changes nothing (no turn is
taken, no prefix recorded), so it may be called against live traffic."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler

from gateway.auth.authenticator import Authenticator
from gateway.http.callers import caller_of
from gateway.http.openapi_bodies import surface_body, with_body
from gateway.inference.forwarder import request_key
from gateway.inference.model_selection import choose_model
from gateway.surfaces import CHAT_COMPLETIONS, InferenceRequest
from gateway.workers.active_catalog import CatalogHolder
from gateway.workers.pool import Placement
from routing.policies import Explanation


def explain_routing(runtimes: CatalogHolder, inference: InferenceRequest) -> dict[str, Any]:
    """How a decoded request (any surface) would be routed now: the model and why, then per model of the
    chain the worker its policy would choose and every worker as the policy weighed it."""
    runtime = runtimes.current
    choice = choose_model(runtime, inference)
    now = asyncio.get_running_loop().time()
    pool = runtime.pool
    chain = []
    for model in (choice.model, *choice.fallbacks):
        placements = pool.placements(model)
        eligible, panic = pool.outlier.eligible([p.name for p in placements], now, down=pool.health.down())
        spec = runtime.catalog.model(model)
        why = pool.explain(model, request_key(inference, model), eligible, now,
                           sticky=inference.session is not None)
        chain.append({"model": model, "policy": spec.policy if spec else None, "panic_mode": panic,
                      "chosen": why.chosen, "reason": why.reason, "score_means": why.score_means,
                      "workers": worker_rows(placements, eligible, why, now)})
    return {"model": choice.model, "route": choice.route, "fallbacks": list(choice.fallbacks),
            "match_on": runtime.chooser.match_on, "candidates": chain}


def routing_routes(runtimes: CatalogHolder, authenticator: Authenticator) -> list[HTTPRouteHandler]:
    @post("/v1/routing/explain", status_code=200, summary="Explain how a chat request would be routed",
          operation_class=with_body(surface_body(CHAT_COMPLETIONS)))
    async def explain(request: Request[Any, Any, Any]) -> dict[str, Any]:
        await caller_of(request, authenticator)
        return explain_routing(runtimes, CHAT_COMPLETIONS.decode(await request.body()))

    return [explain]


def worker_rows(placements: list[Placement], eligible: list[str], why: Explanation, now: float) -> list[dict[str, Any]]:
    """Every worker of a model: what the gateway knows of its load, and how the policy weighed it (the
    figures are absent for a worker that is not eligible: the policy never saw it)."""
    weighed = {c.name: c for c in why.candidates}
    rows = []
    for p in placements:
        load, figures = p.state.load, weighed.get(p.name)
        rows.append({
            "name": p.name, "upstream_model": p.upstream_model, "eligible": p.name in eligible,
            "weight": p.state.spec.weight, "in_flight": p.state.in_flight, "prefilling": p.state.prefilling,
            "waiting": load.waiting, "running": load.running, "kv_usage": load.kv_usage,
            "own_at_scrape": load.own_in_flight,
            "scrape_age_s": None if load.read_at is None else round(now - load.read_at, 3),
            "others": None if figures is None else round(figures.others, 3),
            "load": None if figures is None else round(figures.load, 3),
            "queued": None if figures is None else round(figures.queued, 3),
            "cached": None if figures is None else figures.cached,
            "score": None if figures is None or figures.score is None else round(figures.score, 3),
            "chosen": p.name == why.chosen})
    return rows
