"""A surface is one module plus one registry entry: an app built with an extra surface serves its path on
the hot path and through litestar alike, encodes its answers, streams and errors the surface's way, and
documents its body in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest

from gateway import create_app, load_settings
from gateway.errors import GatewayError
from gateway.surfaces import BUILTIN_SURFACES, ChatCompletions, InferenceRequest, SurfaceRegistry
from routing.catalog import parse_catalog
from simulator import SimulatorThread
from tests.conftest import catalog_yaml
from tests.servers import ServerThread

ORIGIN = "https://app.upcoach.com"
PATH = "/v1/test/enveloped"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


class Enveloped(ChatCompletions):
    """Chat completions (so workers serve it by that name) in another dress: answers in an envelope, a
    marker event first in streams, errors in a shape of their own."""

    paths = (PATH,)
    translates = True

    def encode_answer(self, answer: bytes, request: InferenceRequest) -> bytes:
        return b'{"envelope": ' + answer + b"}"

    async def encode_stream(self, events: AsyncIterator[bytes], request: InferenceRequest) -> AsyncIterator[bytes]:
        try:
            yield b"event: enveloped\ndata: {}\n\n"
            async for event in events:
                yield event
        finally:  # the client left, or the stream ended: close the worker's stream too
            closing = getattr(events, "aclose", None)
            if closing is not None:
                await closing()

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        return {"type": "error", "error": {"type": error.type, "message": error.message}}


@pytest.fixture(scope="module")
def enveloping(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    settings = load_settings({"LOG_LEVEL": "warning", "CORS_ORIGINS": ORIGIN})
    app = create_app(settings, parse_catalog(catalog_yaml([("w", vllm_sim.url)])), background=False,
                     surfaces=SurfaceRegistry([*BUILTIN_SURFACES, Enveloped()]))
    with ServerThread(app) as server:
        yield server


@pytest.mark.parametrize("headers", [{}, {"Origin": ORIGIN}], ids=["fast-path", "litestar"])
def test_the_new_surface_encodes_answers_streams_and_errors(enveloping: ServerThread, headers: dict[str, str]
                                                            ) -> None:
    answer = httpx.post(enveloping.url + PATH, json=CHAT, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["envelope"]["choices"][0]["message"]["role"] == "assistant"
    assert answer.headers["x-gateway-model"] == "chat"

    with httpx.stream("POST", enveloping.url + PATH, json={**CHAT, "stream": True}, headers=headers) as streamed:
        assert streamed.status_code == 200
        lines = [line for line in streamed.iter_lines() if line]
    assert lines[:2] == ["event: enveloped", "data: {}"]
    assert lines[-1] == "data: [DONE]"

    refused = httpx.post(enveloping.url + PATH, json={"model": "chat", "messages": []}, headers=headers)
    assert refused.status_code == 400
    assert refused.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                         "message": "'messages' must be a non-empty array."}}


def test_built_in_surfaces_keep_their_shapes_and_the_schema_documents_the_new_one(enveloping: ServerThread) -> None:
    plain = httpx.post(enveloping.url + "/v1/chat/completions", json=CHAT)
    assert plain.status_code == 200 and "envelope" not in plain.json()
    refused = httpx.post(enveloping.url + "/v1/chat/completions", json={"model": "chat", "messages": []})
    assert refused.json()["error"]["param"] == "messages"
    schema = msgspec.json.decode(httpx.get(enveloping.url + "/schema/openapi.json").content)
    operation = schema["paths"][PATH]["post"]
    assert operation["summary"] == "Create a chat completion"
    assert "messages" in operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
