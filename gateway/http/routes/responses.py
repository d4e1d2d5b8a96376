"""The OpenAI Responses API: `POST /v1/responses`, a turn of the inference handler (authorized, routed,
limited, cached, captured and logged as chat is, with `previous_response_id` expanded and the answer
stored; answered on the fast path like every inference POST, `responses_fast_path`), and the stored
responses: `GET` and `DELETE /v1/responses/{id}`, `POST /v1/responses/input_tokens` (the translated
prompt counted by a worker of the model that can count, else estimated: `x-gateway-token-count` says
which), labelled `responses/stored` and `responses/input_tokens` in metrics. Each handler decodes,
calls one function, and encodes."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.auth.authenticator import Authenticator
from gateway.errors import ModelNotFound
from gateway.http.callers import caller_of
from gateway.http.fast_path import TurnSurface
from gateway.http.openapi_bodies import surface_body, with_body
from gateway.http.replies import answer_request
from gateway.http.request_observer import record_of
from gateway.inference.handler import InferenceHandler
from gateway.inference.model_selection import choose_model
from gateway.inference.responses_turn import StoredResponses
from gateway.inference.token_counting import TokenCounter
from gateway.surfaces.responses import RESPONSES
from gateway.workers.active_catalog import CatalogHolder

_encode = msgspec.json.Encoder().encode
CREATE_PATH = "/v1/responses"

AnyRequest = Request[Any, Any, Any]


def responses_routes(handler: InferenceHandler, responses: StoredResponses, authenticator: Authenticator,
                     runtimes: CatalogHolder, counter: TokenCounter) -> list[HTTPRouteHandler]:
    @post(CREATE_PATH, status_code=200, summary=RESPONSES.doc.summary,
          operation_class=with_body(surface_body(RESPONSES)))
    async def create_response(request: AnyRequest) -> Response[Any]:
        return await answer_request(handler, request, RESPONSES, turn=responses.turn())

    @get("/v1/responses/{response_id:str}", summary="Retrieve a stored response")
    async def retrieve_response(request: AnyRequest, response_id: FromPath[str]) -> Response[bytes]:
        record_of(request.scope).endpoint = "responses/stored"
        caller = await caller_of(request, authenticator)
        return _json(await responses.get(caller, response_id))

    @delete("/v1/responses/{response_id:str}", status_code=200, summary="Delete a stored response")
    async def delete_response(request: AnyRequest, response_id: FromPath[str]) -> Response[bytes]:
        record_of(request.scope).endpoint = "responses/stored"
        caller = await caller_of(request, authenticator)
        await responses.delete(caller, response_id)
        return _json({"id": response_id, "object": "response", "deleted": True})

    @post("/v1/responses/input_tokens", status_code=200,
          summary="Count a response's input tokens",
          operation_class=with_body(surface_body(RESPONSES)))
    async def input_tokens(request: AnyRequest) -> Response[bytes]:
        record = record_of(request.scope)
        record.endpoint = "responses/input_tokens"
        caller = await caller_of(request, authenticator)
        inference = await responses.request(await request.body(), caller)
        runtime = runtimes.current
        choice = choose_model(runtime, inference)
        record.model, record.route = choice.model, choice.route
        if not caller.may_use(choice.model):
            raise ModelNotFound(f"The model `{inference.requested_model or choice.model}` does not exist or you "
                                "do not have access to it.", param="model")
        count = await counter.count(runtime, inference, choice.model, record)
        return Response(_encode({"object": "response.input_tokens", "input_tokens": count.tokens}),
                        media_type="application/json", headers=count.headers)

    return [create_response, retrieve_response, delete_response, input_tokens]


def responses_fast_path(responses: StoredResponses) -> dict[str, TurnSurface]:
    """`POST /v1/responses` for the fast path (`gateway.http.fast_path`), which answers it before litestar
    (its route above stays for the OpenAPI schema, other methods and CORS requests)."""
    return {CREATE_PATH: (RESPONSES, responses.turn)}


def _json(data: Any) -> Response[bytes]:
    return Response(_encode(data), media_type="application/json")
