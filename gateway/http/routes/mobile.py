"""The mobile (UpCoach) API under /api: chat completions at the seed's path, coaching chats by context
type with kept conversation sessions, the models workers have, the on-device model catalog, and the
hybrid inference advice. Every route needs a key as /v1 does (none in open mode).

Each handler decodes, calls one function, and encodes. Both chat routes enter the one inference handler
(`InferenceHandler.answer`), a coaching chat with its turn (`gateway.coaching.conversation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.auth.authenticator import Authenticator
from gateway.coaching.catalog import INFERENCE_MODES
from gateway.coaching.config import MobileConfigHolder, MobileFiles
from gateway.coaching.conversation import Coach, describe_session
from gateway.coaching.model_listing import ModelListing
from gateway.coaching.sessions import SessionStore
from gateway.http.callers import caller_of
from gateway.http.openapi_bodies import with_body
from gateway.http.replies import answer_request
from gateway.http.request_observer import record_of
from gateway.inference.handler import InferenceHandler
from gateway.surfaces import CHAT_COMPLETIONS
from gateway.workers.active_catalog import CatalogHolder
from gateway.workers.control_client import ControlClient
from routing.model_choice import UnknownModel

_encode = msgspec.json.Encoder().encode
_TAGS = ["mobile"]

AnyRequest = Request[Any, Any, Any]

_MESSAGES_SCHEMA: dict[str, Any] = {
    "type": "array", "minItems": 1,
    "items": {"type": "object", "required": ["role", "content"],
              "properties": {"role": {"type": "string", "enum": ["system", "user", "assistant"]},
                             "content": {"type": "string"}}}}
_COACHING_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {
        "schema": {"type": "object", "required": ["messages", "context_type"], "properties": {
            "messages": _MESSAGES_SCHEMA,
            "context_type": {"type": "string", "description": "A context type of config/coaching.yaml "
                             "(habits, goals, motivation, mood, wellness, reminders, affirmations, ...)"},
            "session_id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$",
                           "description": "Keep the conversation: send only the new messages"},
            "stream": {"type": "boolean", "default": False},
            "max_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "model": {"type": "string", "description": "Overrides the context type's model"}}},
        "example": {"messages": [{"role": "user", "content": "Help me build a morning routine"}],
                    "context_type": "habits", "session_id": "morning-routine"}}}}
_CHAT_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {
        "schema": {"type": "object", "required": ["messages"], "properties": {
            "model": {"type": "string"}, "messages": _MESSAGES_SCHEMA, "stream": {"type": "boolean"},
            "max_tokens": {"type": "integer", "minimum": 1}, "temperature": {"type": "number"}}},
        "example": {"model": "mistral", "messages": [{"role": "user", "content": "Give me a motivation tip"}],
                    "max_tokens": 100}}}}


def _json(body: Any) -> Response[bytes]:
    return Response(_encode(body), media_type="application/json")


def mobile_routes(handler: InferenceHandler, runtimes: CatalogHolder, authenticator: Authenticator,
                  sessions: SessionStore, env: Mapping[str, str], control: ControlClient) -> list[HTTPRouteHandler]:
    """`env`: where config/coaching.yaml and config/edge_models.yaml are (`GATEWAY_COACHING_CONFIG`,
    `GATEWAY_EDGE_MODELS_CONFIG`); raises `CatalogError` if either is invalid."""
    config = MobileConfigHolder(MobileFiles.from_env(env), runtimes)
    coach = Coach(runtimes, config, sessions)
    worker_models = ModelListing(control)

    @post("/api/chat/completions", status_code=200, summary="Create a chat completion (as /v1/chat/completions)",
          tags=_TAGS, operation_class=with_body(_CHAT_BODY))
    async def chat_completions(request: AnyRequest) -> Response[Any]:
        return await answer_request(handler, request, CHAT_COMPLETIONS)

    @post("/api/coaching/chat", status_code=200, summary="A coaching chat turn, by context type",
          description="Chooses the system prompt, generation defaults and model from the context type; "
          "with `session_id` the gateway keeps the conversation. Answers an OpenAI chat completion, "
          "or its SSE stream with `stream: true`.", tags=_TAGS, operation_class=with_body(_COACHING_BODY))
    async def coaching_chat(request: AnyRequest) -> Response[Any]:
        return await answer_request(handler, request, CHAT_COMPLETIONS, coach.turn())

    @get("/api/coaching/sessions/{session_id:str}", summary="A coaching session's history", tags=_TAGS)
    async def get_session(request: AnyRequest, session_id: FromPath[str]) -> Response[bytes]:
        record_of(request.scope).endpoint = "coaching/sessions"
        caller = await caller_of(request, authenticator)
        return _json(describe_session(session_id, await coach.history(caller, session_id)))

    @delete("/api/coaching/sessions/{session_id:str}", status_code=200, summary="Clear a coaching session",
            tags=_TAGS)
    async def delete_session(request: AnyRequest, session_id: FromPath[str]) -> Response[bytes]:
        record_of(request.scope).endpoint = "coaching/sessions"
        caller = await caller_of(request, authenticator)
        await coach.forget(caller, session_id)
        return _json({"id": session_id, "object": "coaching.session.deleted", "deleted": True})

    @get("/api/models", summary="The models workers have, with their size (UpCoach shape)", tags=_TAGS)
    async def list_models(request: AnyRequest) -> Response[bytes]:
        record_of(request.scope).endpoint = "models"
        caller = await caller_of(request, authenticator)
        return _json({"models": await worker_models.listing(runtimes.current, caller.may_use)})

    @get("/api/edge-models", summary="The on-device model catalog (config/edge_models.yaml)", tags=_TAGS)
    async def edge_models(request: AnyRequest) -> Response[bytes]:
        record_of(request.scope).endpoint = "edge_models"
        await caller_of(request, authenticator)
        return _json(config.current.edge.document)

    @get("/api/inference-config", summary="Advice for the app's hybrid (server / on-device) inference modes",
         tags=_TAGS)
    async def inference_config(request: AnyRequest) -> Response[bytes]:
        record_of(request.scope).endpoint = "inference_config"
        await caller_of(request, authenticator)
        return _json(inference_advice(config, runtimes))

    return [chat_completions, coaching_chat, get_session, delete_session, list_models, edge_models,
            inference_config]


def inference_advice(config: MobileConfigHolder, runtimes: CatalogHolder) -> dict[str, Any]:
    """The mode the app should use, the longest prompt to keep on the device, and per context type the
    server model and the on-device model (none: server only)."""
    coaching = config.current.coaching
    edge = config.current.edge.catalog
    chooser = runtimes.current.chooser
    contexts: dict[str, Any] = {}
    for name in coaching.names:
        context = coaching.context(name)
        assert context is not None
        server_model = context.model
        if server_model is None:
            try:
                server_model = chooser.by_rules(name).model
            except UnknownModel:
                server_model = None
        contexts[name] = {"server_model": server_model, "edge_model": context.edge_model,
                          "on_device": context.edge_model is not None}
    advice = coaching.inference
    return {"mode": advice.mode, "modes": list(INFERENCE_MODES),
            "on_device_max_prompt_length": advice.on_device_max_prompt_length,
            "edge_defaults": dict(edge.defaults), "context_types": contexts}
