"""The OpenAI-compatible endpoints under /v1. Each decodes, calls one function, and encodes."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.auth.authenticator import Authenticator
from gateway.errors import ModelNotFound
from gateway.http.callers import caller_of
from gateway.http.openapi_bodies import CHAT_COMPLETION_BODY, COMPLETION_BODY, EMBEDDING_BODY, with_body
from gateway.http.replies import answer_request
from gateway.http.request_observer import record_of
from gateway.inference.handler import InferenceHandler
from gateway.workers.active_catalog import Runtime, RuntimeHolder

_encode = msgspec.json.Encoder().encode

AnyRequest = Request[Any, Any, Any]


class _ModelCards:
    """`/v1/models` cards, computed once per catalog."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        served = runtime.pool.served_models()
        created = int(runtime.loaded_at)
        self.cards = [{"id": m.name, "object": "model", "created": created, "owned_by": "llm-gateway"}
                      for m in runtime.catalog.models if m.name in served]
        self.by_id = {card["id"]: _encode(card) for card in self.cards}
        self.listing = _encode({"object": "list", "data": self.cards})


def openai_routes(handler: InferenceHandler, runtimes: RuntimeHolder, authenticator: Authenticator
                  ) -> list[HTTPRouteHandler]:
    """The /v1 routes. The inference POSTs are usually answered before litestar (`gateway.http.fast_path`)."""
    cards = _ModelCards(runtimes.current)

    def current_cards() -> _ModelCards:
        nonlocal cards
        if cards.runtime is not runtimes.current:
            cards = _ModelCards(runtimes.current)
        return cards

    @post("/v1/chat/completions", status_code=200, summary="Create a chat completion",
          operation_class=with_body(CHAT_COMPLETION_BODY))
    async def chat_completions(request: AnyRequest) -> Response[Any]:
        return await answer_request(handler, request, "chat/completions")

    @post("/v1/completions", status_code=200, summary="Create a completion",
          operation_class=with_body(COMPLETION_BODY))
    async def completions(request: AnyRequest) -> Response[Any]:
        return await answer_request(handler, request, "completions")

    @post("/v1/embeddings", status_code=200, summary="Create embeddings", operation_class=with_body(EMBEDDING_BODY))
    async def embeddings(request: AnyRequest) -> Response[Any]:
        return await answer_request(handler, request, "embeddings")

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

    return [chat_completions, completions, embeddings, list_models, retrieve_model]
