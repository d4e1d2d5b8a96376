"""The simulated Ollama server's inference endpoints, and the aiohttp application of a whole worker.

`POST /api/chat` and `/api/generate` stream NDJSON (`stream` defaults to true): one line per token
with `done: false`, then a `done: true` line with `done_reason`, `prompt_eval_count`, `eval_count`
and the durations in nanoseconds. `POST /v1/messages` (and `/v1/messages/count_tokens`) and
`POST /v1/responses` are Ollama's Anthropic and OpenAI Responses layers over the same chat generation
(see `simulator.ollama_replies`). `POST /api/embed` answers `{"model", "embeddings", ...}`. Each model
serves `num_parallel` requests at once with up to `max_queue` waiting (then 503); a model not in
memory is loaded first (see `simulator.ollama_models`). An empty prompt or conversation only loads the
model (`done_reason: load`), or unloads it when `keep_alive` is 0 (`done_reason: unload`).
`prompt_eval_count` counts the whole (num_ctx-cut) prompt, cached tokens included.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from simulator.config import SimulatorConfig
from simulator.conversations import Conversation, messages_conversation, responses_conversation
from simulator.engine import AdmissionQueue, Engine, GenerationPlan, QueueFullError
from simulator.faults import WHOLE_REPLY_KINDS, Fault, FaultKind
from simulator.ollama_admin import OllamaAdminEndpoints
from simulator.ollama_models import ModelStore, normalize_name
from simulator.ollama_replies import OllamaReply, Timings, line
from simulator.ollama_requests import (
    BUSY_MESSAGE,
    Endpoint,
    OllamaGeneration,
    check_surface_fields,
    generation_request,
    is_fault_model,
    model_name,
    ollama_error,
    read_json_body,
    reshaped_error,
    resolve_fault_or_404,
)
from simulator.stream_script import play_stream
from simulator.streaming import (
    ChunkStream,
    ErrorReply,
    hang_until_disconnected,
    json_response,
    record_of,
    send_half_then_drop,
)
from simulator.text import count_tokens, embedding, serialize_messages

_NS = 1_000_000_000


class OllamaEndpoints:
    """The inference handlers of one simulated Ollama worker."""

    def __init__(self, config: SimulatorConfig, engine: Engine, store: ModelStore) -> None:
        self.config = config
        self.engine = engine
        self.store = store

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/chat", self.chat)
        app.router.add_post("/api/generate", self.generate)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_post("/v1/responses", self.responses)

    async def _refuse_for_fault(self, fault: Fault | None) -> None:
        if fault is None:
            return
        if fault.kind is FaultKind.NEVER_ANSWER:
            await hang_until_disconnected()
        status = fault.error_status
        if status == 503:
            raise ollama_error(503, BUSY_MESSAGE)
        if status is not None:
            raise ollama_error(status, f"simulated error (fault {fault.name})")

    async def _load(self, name: str, fault: Fault | None) -> float:
        """Load the model (fault-named models need no loading); the seconds it took."""
        if is_fault_model(name, fault):
            return 0.0
        return await self.store.ensure_loaded(name)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_body(request)
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            raise ollama_error(400, "messages must be a list")
        prompt = serialize_messages(messages)
        return await self._serve(request, body, "chat", prompt, loads_only=not messages, conversation=messages)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_body(request)
        prompt = body.get("prompt") or ""
        system = body.get("system") or ""
        if not isinstance(prompt, str) or not isinstance(system, str):
            raise ollama_error(400, "prompt must be a string")
        return await self._serve(request, body, "generate", system + prompt, loads_only=not prompt)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_surface(request, "messages")

    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_surface(request, "responses")

    async def _serve_surface(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        """A Messages or Responses request, turned into the chat generation it stands for."""
        try:
            body = await read_json_body(request)
            check_surface_fields(body, endpoint)
            messages = messages_conversation(body) if endpoint == "messages" else responses_conversation(body)
            prompt = serialize_messages(messages)
            return await self._serve(request, body, endpoint, prompt, loads_only=False, conversation=messages)
        except ErrorReply as error:
            raise reshaped_error(error, endpoint) from None

    async def count_tokens(self, request: web.Request) -> web.Response:
        try:
            body = await read_json_body(request)
            name = model_name(request, body)
            if not isinstance(body.get("messages"), list):
                raise ollama_error(400, "messages is required")
            await self._refuse_for_fault(resolve_fault_or_404(request, name, self.config, self.store))
        except ErrorReply as error:
            raise reshaped_error(error, "messages") from None
        tokens = count_tokens(serialize_messages(messages_conversation(body)))
        record_of(request).prompt_tokens = tokens
        return json_response({"input_tokens": tokens})

    async def _serve(
        self,
        request: web.Request,
        body: dict[str, Any],
        endpoint: Endpoint,
        prompt_text: str,
        loads_only: bool,
        conversation: Conversation | None = None,
    ) -> web.StreamResponse:
        generation = generation_request(request, body, endpoint, prompt_text, self.config, self.store, conversation)
        if loads_only:
            return await self._load_or_unload(generation)
        await self._refuse_for_fault(generation.fault)
        try:
            ticket = self.engine.queue_for(normalize_name(generation.model)).enter()
        except QueueFullError:
            raise ollama_error(503, BUSY_MESSAGE) from None
        async with ticket:
            await ticket.start()
            load_s = await self._load(generation.model, generation.fault)
            call = generation.tool_call
            pieces = call.pieces if call is not None else None
            limit = generation.num_predict
            plan = self.engine.plan(generation.model, prompt_text, limit, generation.prompt_tokens, pieces)
            record = record_of(request)
            record.prompt_tokens = plan.prompt_tokens
            record.cached_prompt_tokens = plan.cached_prompt_tokens
            record.completion_tokens = plan.completion_tokens
            try:
                return await self._run(request, generation, plan, load_s, ticket.queue)
            finally:
                self.store.keep(generation.model, generation.keep_alive_s)

    async def _run(
        self,
        request: web.Request,
        generation: OllamaGeneration,
        plan: GenerationPlan,
        load_s: float,
        queue: AdmissionQueue,
    ) -> web.StreamResponse:
        record = record_of(request)
        fault = generation.fault
        slow = fault is not None and fault.kind is FaultKind.SLOW
        async with self.engine.occupy(plan, record.started):
            prefill_started = time.monotonic()
            await self.engine.prefill(plan, queue, record.started)
            first_token = time.monotonic()
            tokens = self.engine.decode(plan, queue, slow)
            reply = OllamaReply(generation, plan, Timings(record.started, load_s, prefill_started, first_token))
            if generation.stream:
                stream = await ChunkStream.open(request, reply.content_type)
                return await play_stream(stream, reply.stream_format(), tokens, fault)
            async for _ in tokens:
                pass
            return await _whole_reply(request, reply.whole(), fault)

    async def _load_or_unload(self, generation: OllamaGeneration) -> web.Response:
        if generation.keep_alive_s == 0:
            self.store.unload(generation.model)
            reason = "unload"
        else:
            await self._load(generation.model, generation.fault)
            self.store.keep(generation.model, generation.keep_alive_s)
            reason = "load"
        return json_response({**line(generation, ""), "done": True, "done_reason": reason})

    async def embed(self, request: web.Request) -> web.Response:
        body = await read_json_body(request)
        name = model_name(request, body)
        fault = resolve_fault_or_404(request, name, self.config, self.store)
        await self._refuse_for_fault(fault)
        value = body.get("input")
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise ollama_error(400, "invalid input type")
        load_s = await self._load(name, fault)
        record = record_of(request)
        record.prompt_tokens = sum(count_tokens(text) for text in texts)
        vectors = [embedding(self.config.seed, name, text, self.config.embedding_dim) for text in texts]
        return json_response(
            {
                "model": name,
                "embeddings": vectors,
                "total_duration": int((time.monotonic() - record.started) * _NS),
                "load_duration": int(load_s * _NS),
                "prompt_eval_count": record.prompt_tokens,
            }
        )


async def _whole_reply(request: web.Request, body: dict[str, Any], fault: Fault | None) -> web.StreamResponse:
    """A non-streamed reply, as the fault (if any) leaves it."""
    if fault is None or fault.kind in WHOLE_REPLY_KINDS:
        return json_response(body)
    if fault.kind is FaultKind.MID_STREAM_ERROR:
        raise ollama_error(500, "simulated error (fault mid-stream-error)")
    if fault.kind is FaultKind.GARBAGE_SSE:
        return web.Response(body=b"<garbage> {not json", content_type="application/json")
    if fault.kind is FaultKind.DROP_MID_STREAM:
        return await send_half_then_drop(request, body, {})
    await hang_until_disconnected()  # stall-after-N: the reply never comes


def build_ollama_app(
    config: SimulatorConfig, engine: Engine, store: ModelStore, middlewares: list[Middleware]
) -> web.Application:
    """The aiohttp application of one simulated Ollama worker."""
    app = web.Application(middlewares=middlewares)
    OllamaAdminEndpoints(config, store).add_routes(app)
    OllamaEndpoints(config, engine, store).add_routes(app)
    return app
