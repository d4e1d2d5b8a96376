"""The /v1 endpoints: one inference route per API surface (`gateway.surfaces`: its paths, its decoding
and encoding), and the model listing. Each decodes, calls one function, and encodes."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.auth.authenticator import Authenticator
from gateway.errors import ModelNotFound
from gateway.http.callers import caller_of
from gateway.http.openapi_bodies import surface_body, with_body
from gateway.http.replies import answer_request
from gateway.http.request_observer import record_of
from gateway.inference.handler import InferenceHandler
from gateway.surfaces import Surface, SurfaceRegistry
from gateway.workers.active_catalog import ActiveCatalog, CatalogHolder

_encode = msgspec.json.Encoder().encode

AnyRequest = Request[Any, Any, Any]


class _ModelCards:
    """`/v1/models` cards, computed once per catalog."""

    def __init__(self, runtime: ActiveCatalog) -> None:
        self.runtime = runtime
        served = runtime.pool.served_models()
        created = int(runtime.loaded_at)
        self.cards = [{"id": m.name, "object": "model", "created": created, "owned_by": "llm-gateway"}
                      for m in runtime.catalog.models if m.name in served]
        self.by_id = {card["id"]: _encode(card) for card in self.cards}
        self.listing = _encode({"object": "list", "data": self.cards})


def openai_routes(handler: InferenceHandler, surfaces: SurfaceRegistry, runtimes: CatalogHolder,
                  authenticator: Authenticator) -> list[HTTPRouteHandler]:
    """The /v1 routes. The inference POSTs are usually answered before litestar (`gateway.http.fast_path`)."""
    cards = _ModelCards(runtimes.current)

    def current_cards() -> _ModelCards:
        nonlocal cards
        if cards.runtime is not runtimes.current:
            cards = _ModelCards(runtimes.current)
        return cards

    @get("/v1/models", summary="List the models the gateway serves")
    async def list_models(request: AnyRequest) -> Response[bytes]:
        record_of(request.scope).endpoint = "models"
        caller = await caller_of(request, authenticator)
        cards = current_cards()
        if caller.key is None or caller.key.models == ("*",):
            return Response(cards.listing, media_type="application/json")
        mine = [card for card in cards.cards if caller.may_use(str(card["id"]))]
        return Response(_encode({"object": "list", "data": mine}), media_type="application/json")

    @get("/v1/models/{model_id:path}", summary="Retrieve a model")
    async def retrieve_model(request: AnyRequest, model_id: FromPath[str]) -> Response[bytes]:
        record_of(request.scope).endpoint = "models"
        caller = await caller_of(request, authenticator)
        model_id = model_id.lstrip("/")
        card = current_cards().by_id.get(model_id)
        if card is None or not caller.may_use(model_id):
            raise ModelNotFound(f"The model `{model_id}` does not exist or you do not have access to it.",
                                param="model")
        return Response(card, media_type="application/json")

    return [*(_inference_route(surface, handler) for surface in surfaces), list_models, retrieve_model]


def _inference_route(surface: Surface, handler: InferenceHandler) -> HTTPRouteHandler:
    """The route of one surface's paths; its errors take the surface's shape here, where litestar's own
    exception handler would give OpenAI's."""

    async def infer(request: AnyRequest) -> Response[Any]:
        return await answer_request(handler, request, surface)

    infer.__name__ = infer.__qualname__ = surface.name.replace("/", "_")  # names the OpenAPI operation
    route: HTTPRouteHandler = post(list(surface.paths), status_code=200, summary=surface.doc.summary,
                                   operation_class=with_body(surface_body(surface)))(infer)
    return route
