"""The simulated vLLM OpenAI-compatible server: an aiohttp application over the shared engine.

Routes: `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/responses` (OpenAI Responses),
`POST /v1/messages` and `POST /v1/messages/count_tokens` (Anthropic Messages), `POST /v1/embeddings`,
`GET /v1/models`, rerank, score, tokenize and detokenize (`simulator.vllm_pooling`), audio transcriptions
and translations (`simulator.vllm_audio`), `GET /health`,
`GET /version`, `GET /load`, `GET /metrics`. A streamed request gets its headers as soon as it is queued
(like vLLM's StreamingResponse), its first event (chat's role chunk) and first token after the prefill.
`X-Request-Id` is echoed and becomes the response id's suffix. Messages errors are vLLM's errors
reshaped as Anthropic's `{"type": "error", "error": {"type", "message"}}` (keeping vLLM's type names),
except a body that fails validation, which vLLM rejects before its Messages handler runs (the
OpenAI-style error, like every other route).
"""

from __future__ import annotations

import base64
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Middleware

from simulator.config import SimulatorConfig
from simulator.engine import Engine, GenerationPlan, QueueFullError
from simulator.faults import WHOLE_REPLY_KINDS, Fault, FaultKind
from simulator.metrics import METRICS_CONTENT_TYPE, VllmMetrics
from simulator.stream_script import play_stream
from simulator.streaming import (
    ChunkStream,
    ErrorReply,
    Handler,
    hang_until_disconnected,
    json_response,
    record_of,
    send_half_then_drop,
)
from simulator.text import embedding, pack_float32
from simulator.vllm_audio import VllmAudio
from simulator.vllm_pooling import VllmPooling
from simulator.vllm_replies import VllmReplies
from simulator.vllm_requests import (
    LORA_ADAPTERS,
    Endpoint,
    GenerationRequest,
    check_messages_fields,
    count_tokens_request,
    embedding_inputs,
    generation_request,
    read_json_body,
    resolve_model,
    vllm_error,
)
from simulator.vllm_shapes import embedding_list, error_body, model_list


class VllmEndpoints:
    """The HTTP handlers of one simulated vLLM worker."""

    def __init__(self, config: SimulatorConfig, engine: Engine, metrics: VllmMetrics) -> None:
        self.config = config
        self.engine = engine
        self.metrics = metrics
        self.replies = VllmReplies(config)
        self.created = int(time.time())

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app[LORA_ADAPTERS] = {}
        app.router.add_post("/v1/load_lora_adapter", self.load_lora_adapter)
        app.router.add_post("/v1/unload_lora_adapter", self.unload_lora_adapter)
        app.router.add_get("/health", self.health)
        app.router.add_get("/version", self.version)
        app.router.add_get("/load", self.load)
        app.router.add_get("/metrics", self.metrics_text)
        VllmPooling(self.config).add_routes(app)
        VllmAudio(self.config).add_routes(app)

    @web.middleware
    async def auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """vLLM's --api-key: every /v1 route needs `Authorization: Bearer <key>`."""
        key = self.config.api_key
        authorized = key is None or request.headers.get("Authorization") == f"Bearer {key}"
        if not authorized and request.path.startswith("/v1"):
            return json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    # --- operations ---------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def version(self, request: web.Request) -> web.Response:
        return json_response({"version": self.config.version})

    async def load(self, request: web.Request) -> web.Response:
        return json_response({"server_load": self.engine.running + self.engine.waiting})

    async def metrics_text(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render(self.engine))
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    async def models(self, request: web.Request) -> web.Response:
        listing = model_list(self.config.models, self.created, self.config.max_model_len)
        for name, path in request.app[LORA_ADAPTERS].items():
            listing["data"].append({"id": name, "object": "model", "created": self.created, "owned_by": "vllm",
                                    "root": path, "parent": self.config.models[0],
                                    "max_model_len": self.config.max_model_len})  # fmt: skip
        return json_response(listing)

    async def load_lora_adapter(self, request: web.Request) -> web.Response:
        """vLLM's runtime LoRA loading (VLLM_ALLOW_RUNTIME_LORA_UPDATING=True): 200 with a text body."""
        body = await read_json_body(request)
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not isinstance(path, str):
            raise vllm_error(400, "lora_name and lora_path are required")
        adapters = request.app[LORA_ADAPTERS]
        if name in adapters:
            raise vllm_error(400, f"The lora adapter '{name}' has already been loaded.")
        adapters[name] = path
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def unload_lora_adapter(self, request: web.Request) -> web.Response:
        body = await read_json_body(request)
        name = body.get("lora_name")
        adapters = request.app[LORA_ADAPTERS]
        if not isinstance(name, str) or name not in adapters:
            raise vllm_error(404, f"The lora adapter '{name}' cannot be found.")
        del adapters[name]
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")

    # --- inference ----------------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate_for(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate_for(request, "completions")

    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await self._generate_for(request, "responses")

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_body(request)
        check_messages_fields(body, counting=False)
        try:
            return await self._generate(request, generation_request(request, body, self.config, "messages"))
        except ErrorReply as error:
            raise _as_anthropic_error(error) from None

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = await read_json_body(request)
        check_messages_fields(body, counting=True)
        try:
            fault, tokens = count_tokens_request(request, body, self.config)
            if fault is not None:
                await self._refuse_for_fault(fault, {})
        except ErrorReply as error:
            raise _as_anthropic_error(error) from None
        return json_response({"input_tokens": tokens})

    async def _generate_for(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        body = await read_json_body(request)
        return await self._generate(request, generation_request(request, body, self.config, endpoint))

    async def _generate(self, request: web.Request, generation: GenerationRequest) -> web.StreamResponse:
        record = record_of(request)
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        record.request_id = request_id
        headers = {"X-Request-Id": request_id}
        fault = generation.fault
        if fault is not None:
            await self._refuse_for_fault(fault, headers)
        queue = self.engine.queue_for(generation.model)
        try:
            ticket = queue.enter()
        except QueueFullError as error:
            raise ErrorReply(503, error_body(_queue_full_message(error), 503), headers) from None
        async with ticket:
            stream = await ChunkStream.open(request, "text/event-stream", headers) if generation.stream else None
            await ticket.start()
            call = generation.tool_call
            plan = self.engine.plan(
                generation.model,
                generation.prompt_text,
                generation.max_tokens,
                generation.prompt_tokens,
                call.pieces if call is not None else None,
            )
            record.prompt_tokens = plan.prompt_tokens
            record.cached_prompt_tokens = plan.cached_prompt_tokens  # the step model finds them at admission
            record.completion_tokens = plan.completion_tokens
            slow = fault is not None and fault.kind is FaultKind.SLOW
            async with self.engine.occupy(plan, record.started) as generation_run:
                plan = await generation_run.first_token(queue)
                record.cached_prompt_tokens = plan.cached_prompt_tokens
                tokens = generation_run.tokens(queue, slow)
                if stream is not None:
                    stream_format = self.replies.stream_format(generation, plan, request_id)
                    return await play_stream(stream, stream_format, tokens, fault)
                async for _ in tokens:
                    pass
                return await self._whole_reply(request, generation, plan, request_id, headers)

    async def _refuse_for_fault(self, fault: Fault, headers: dict[str, str]) -> None:
        if fault.kind is FaultKind.NEVER_ANSWER:
            await hang_until_disconnected()
        status = fault.error_status
        if status == 503:
            raise ErrorReply(503, error_body(_queue_full_message(None), 503), headers)
        if status is not None:
            raise ErrorReply(status, error_body(f"Simulated error (fault {fault.name}).", status), headers)

    async def _whole_reply(
        self,
        request: web.Request,
        generation: GenerationRequest,
        plan: GenerationPlan,
        request_id: str,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        fault = generation.fault
        body = self.replies.whole(generation, plan, request_id)
        if fault is None or fault.kind in WHOLE_REPLY_KINDS:
            return json_response(body, headers=headers)
        if fault.kind is FaultKind.MID_STREAM_ERROR:
            raise ErrorReply(500, error_body(f"Simulated generation failure (fault {fault.name}).", 500), headers)
        if fault.kind is FaultKind.GARBAGE_SSE:
            return web.Response(body=b"this is { not json", content_type="application/json", headers=headers)
        if fault.kind is FaultKind.DROP_MID_STREAM:
            return await send_half_then_drop(request, body, headers)
        await hang_until_disconnected()  # stall-after-N: the whole reply never comes

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_body(request)
        texts = embedding_inputs(body)
        model, fault = resolve_model(request, body, self.config)
        if fault is not None:
            await self._refuse_for_fault(fault, {})
        record = record_of(request)
        record.prompt_tokens = sum(tokens for _, tokens in texts)
        as_base64 = body.get("encoding_format") == "base64"
        vectors: list[list[float] | str] = []
        for text, _ in texts:
            vector = embedding(self.config.seed, model, text, self.config.embedding_dim)
            vectors.append(base64.b64encode(pack_float32(vector)).decode() if as_base64 else vector)
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        record.request_id = request_id
        response_id = f"embd-{request_id}"
        created = int(time.time())
        return json_response(
            embedding_list(response_id, created, model, vectors, record.prompt_tokens),
            headers={"X-Request-Id": request_id},
        )


def _queue_full_message(error: QueueFullError | None) -> str:
    detail = f" ({error})" if error is not None else ""
    return f"The engine's request queue is full{detail}; please try again later or on a different instance."


def _as_anthropic_error(error: ErrorReply) -> ErrorReply:
    """vLLM's error reshaped for its Messages route: `{"type": "error", "error": {"type", "message"}}`."""
    detail = error.body.get("error") if isinstance(error.body, dict) else None
    if not isinstance(detail, dict):
        return error
    shaped = {"type": "error", "error": {"type": detail.get("type"), "message": detail.get("message")}}
    return ErrorReply(error.status, shaped, error.headers)


def build_vllm_app(endpoints: VllmEndpoints, middlewares: list[Middleware]) -> web.Application:
    """The aiohttp application of one simulated vLLM worker."""
    app = web.Application(middlewares=[*middlewares, endpoints.auth_middleware])
    endpoints.add_routes(app)
    return app
