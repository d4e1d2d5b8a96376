"""One inference request, from decoded body to the worker's answer: choose the model, choose the
worker, rewrite `model` to the worker's own id, forward, and relay the answer (whole or streamed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from gateway.errors import ModelNotFound
from gateway.inference_request import InferenceRequest
from gateway.upstream.openai_compatible import OpenAICompatibleClient
from gateway.upstream.sse_relay import relay_sse
from gateway.worker_directory import Placement, WorkerDirectory
from routing.model_choice import ModelChoice, ModelChooser, UnknownModel

_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Reply:
    """The answer to send: a whole JSON body, or a stream of SSE bytes."""

    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


class InferencePipeline:
    def __init__(self, chooser: ModelChooser, directory: WorkerDirectory, client: OpenAICompatibleClient):
        self._chooser = chooser
        self._directory = directory
        self._client = client

    def choose(self, request: InferenceRequest) -> tuple[ModelChoice, Placement]:
        try:
            choice = self._chooser.choose(request.requested_model, request.routing_text())
        except UnknownModel as exc:
            if exc.requested is None:
                raise ModelNotFound("No `model` was given and the catalog has no default model.",
                                    param="model", code="model_not_found") from None
            raise ModelNotFound(f"The model `{exc.requested}` does not exist or you do not have access "
                                "to it.", param="model") from None
        return choice, self._directory.choose(choice.model)

    async def forward(self, request: InferenceRequest, request_id: str) -> Reply:
        choice, placement = self.choose(request)
        client_wants_usage = request.wants_usage
        body = request.body
        body["model"] = placement.upstream_model
        if request.stream:
            # Always ask for usage, so accounting never depends on the client's choice.
            options = body.get("stream_options")
            body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) \
                else {"include_usage": True}
        headers = {"x-gateway-model": choice.model, "x-gateway-route": choice.route,
                   "x-gateway-worker": placement.name}
        worker = placement.target.worker
        deadline = asyncio.get_running_loop().time() + worker.timeouts.total
        response = await self._client.send(placement.target, "/" + request.endpoint, _encode(body), request_id)
        if not request.stream:
            return Reply(headers=headers, body=await self._client.read_body(response, worker))
        stream = relay_sse(response, worker_name=worker.name, idle_timeout=worker.timeouts.idle,
                           deadline=deadline,
                           client_wants_usage=client_wants_usage,
                           prompt_tokens_estimate=request.prompt_tokens_estimate())
        return Reply(headers=headers, stream=stream)
