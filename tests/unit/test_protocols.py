"""Worker protocols (`gateway.protocols`): every catalog worker kind has one; each declares the surfaces it
serves and the parameters it understands, and the declaration is what its mapping does; each maps a
request to its path and body, an answer back to OpenAI's shape, and a worker's refusal to our error.
(Ollama's translation itself is pinned on its documentation in tests/contract/test_ollama_translation.py.)"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, get_args

import pytest
from aiohttp import web

from gateway.errors import InvalidRequest, UpstreamError, WorkerRejected
from gateway.protocols import (
    PROTOCOL_BY_KIND,
    Capabilities,
    LlamaCppServer,
    OllamaNative,
    OpenAICompatible,
    VllmServer,
    protocols_by_kind,
)
from gateway.protocols.base import StreamRelay, TokenCountCalls
from gateway.protocols.ollama_answers import StreamTranslator
from gateway.protocols.ollama_requests import PARAMETERS, to_ollama
from gateway.surfaces import CHAT_COMPLETIONS, EMBEDDINGS
from gateway.surfaces.passthrough import TOKENIZE
from gateway.surfaces.request import Endpoint, InferenceRequest
from gateway.upstream.client import WorkerTarget
from gateway.upstream.sse_relay import StreamCutoff, StreamOutcome
from gateway.workers.pool import Placement, WorkerState
from routing.catalog import WorkerKind, WorkerSpec
from tests.upstream_streams import stream_opener

SURFACES: tuple[Endpoint, ...] = ("chat/completions", "completions", "embeddings")
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}

# What a body needs on each surface, and what is read outside the request mapping: `model` (the worker's id
# replaces it), `stream_options` (the gateway's usage chunk), `encoding_format` (the answer's packing), `n`
# (only 1 is taken).
REQUIRED: dict[Endpoint, dict[str, Any]] = {"chat/completions": {"messages": [{"role": "user", "content": "x"}]},
                                            "completions": {"prompt": "x"}, "embeddings": {"input": "x"}}
_GENERATING_OUTSIDE = {"model": "chat", "stream_options": {"include_usage": True}, "n": 1}
OUTSIDE_THE_MAPPING: dict[Endpoint, dict[str, Any]] = {
    "chat/completions": _GENERATING_OUTSIDE, "completions": _GENERATING_OUTSIDE,
    "embeddings": {"model": "embed", "encoding_format": "base64"}}
GENERATING: dict[str, Any] = {
    "stream": True, "response_format": {"type": "json_object"}, "format": "json", "options": {"mirostat": 1},
    "top_k": 20, "min_p": 0.05, "typical_p": 0.9, "repeat_penalty": 1.1, "repetition_penalty": 1.2,
    "temperature": 0.2, "top_p": 0.9, "seed": 42, "frequency_penalty": 1.0, "presence_penalty": 1.5,
    "max_tokens": 100, "max_completion_tokens": 50, "stop": "\n", "keep_alive": "5m", "think": True,
    "reasoning_effort": "low"}
SAMPLES: dict[Endpoint, dict[str, Any]] = {
    "chat/completions": GENERATING | {"tools": [WEATHER_TOOL], "tool_choice": "none"},
    "completions": GENERATING | {"suffix": "end"},
    "embeddings": {"dimensions": 8, "keep_alive": "5m"},
}
"""A value of each parameter Ollama's mapping reads, per surface."""
UNDECLARED = {"logit_bias": {"50256": -100}, "logprobs": True, "top_logprobs": 2, "user": "u", "echo": True,
              "parallel_tool_calls": False, "best_of": 2, "service_tier": "auto", "metadata": {"a": "b"},
              "store": True, "session_id": "s", "prediction": {"type": "content", "content": "x"}}


def placement(kind: WorkerKind, *, upstream_model: str = "llama3.2", num_ctx: int | None = None) -> Placement:
    spec = WorkerSpec(name="w-1", kind=kind, models=("chat",), base_url="http://127.0.0.1:9")
    return Placement(WorkerState(spec=spec, target=WorkerTarget.for_worker(spec, {})), upstream_model, num_ctx)


def ollama_payload(endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
    _, raw = to_ollama(endpoint, body, upstream_model="llama3.2", num_ctx=None)
    decoded = json.loads(raw)
    assert isinstance(decoded, dict)
    return decoded


# --- the registry -------------------------------------------------------------------------------------


def test_every_catalog_worker_kind_has_a_protocol() -> None:
    assert set(PROTOCOL_BY_KIND) == set(get_args(WorkerKind))
    assert PROTOCOL_BY_KIND["ollama"] is OllamaNative
    assert PROTOCOL_BY_KIND["openai"] is OpenAICompatible
    assert PROTOCOL_BY_KIND["vllm"] is VllmServer and issubclass(VllmServer, OpenAICompatible)
    assert PROTOCOL_BY_KIND["local"] is PROTOCOL_BY_KIND["llamacpp"] is LlamaCppServer


def test_the_lookup_table_holds_one_instance_per_protocol() -> None:
    table = protocols_by_kind()
    assert isinstance(table["vllm"], VllmServer) and type(table["openai"]) is OpenAICompatible
    assert isinstance(table["local"], LlamaCppServer) and table["local"] is table["llamacpp"]
    assert isinstance(table["ollama"], OllamaNative)
    assert protocols_by_kind()["vllm"] is not table["vllm"]  # each forwarder its own: no module-level state


# --- declared capabilities ------------------------------------------------------------------------------


def test_every_protocol_serves_the_generation_surfaces_and_declares_the_pass_through_ones() -> None:
    for protocol in (OpenAICompatible, VllmServer, LlamaCppServer, OllamaNative):
        assert all(protocol.capabilities.serves(surface) for surface in SURFACES)
    audio = {"audio/transcriptions", "audio/translations"}
    assert OpenAICompatible.capabilities.surfaces == {*SURFACES, "rerank", "score", "tokenize", "detokenize", *audio}
    assert VllmServer.capabilities.surfaces == {*SURFACES, "rerank", "score", "tokenize", "detokenize", *audio,
                                                "messages", "responses"}
    # no score; Responses translated (its stream lacks what the openai SDK indexes by)
    assert LlamaCppServer.capabilities.surfaces == {*SURFACES, "rerank", "tokenize", "detokenize", "messages"}
    assert OllamaNative.capabilities.surfaces == {*SURFACES, "messages", "responses"}


def test_vllm_and_llama_cpp_workers_count_tokens_and_the_others_do_not() -> None:
    counting = {kind for kind, protocol in PROTOCOL_BY_KIND.items() if protocol.capabilities.counts_tokens}
    assert counting == {"vllm", "local", "llamacpp"}
    with pytest.raises(NotImplementedError):
        OllamaNative().token_count(REQUIRED["chat/completions"], placement("ollama"))


def _run_count(calls: TokenCountCalls, answers: list[bytes]) -> tuple[list[tuple[str, Any]], int]:
    """The calls a protocol asks for (path, decoded body), each answered in turn, and its count."""
    asked = []
    call = next(calls)
    for answer in answers:
        asked.append((call[0], json.loads(call[1])))
        try:
            call = calls.send(answer)
        except StopIteration as done:
            return asked, done.value
    raise AssertionError("the protocol asked for more calls than it was answered")


def test_vllm_counts_with_one_tokenize_call_at_its_root() -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER_TOOL], "max_tokens": 5}
    asked, count = _run_count(VllmServer().token_count(chat, placement("vllm", upstream_model="m-1")),
                              [b'{"count": 42, "max_model_len": 4096, "tokens": []}'])
    assert count == 42
    assert asked == [("/../tokenize", {"model": "m-1", "messages": chat["messages"], "tools": [WEATHER_TOOL],
                                       "add_generation_prompt": True})]
    asked, _ = _run_count(VllmServer().token_count({"messages": chat["messages"], "tools": []}, placement("vllm")),
                          [b'{"count": 3}'])
    assert "tools" not in asked[0][1]


def test_llama_cpp_counts_the_templated_prompt() -> None:
    chat = {"messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER_TOOL]}
    asked, count = _run_count(LlamaCppServer().token_count(chat, placement("local")),
                              [b'{"prompt": "<|user|>Hi<|assistant|>"}', b'{"tokens": [1, 2, 3, 4]}'])
    assert count == 4
    assert asked == [("/../apply-template", {"messages": chat["messages"], "tools": [WEATHER_TOOL]}),
                     ("/../tokenize", {"content": "<|user|>Hi<|assistant|>"})]


@pytest.mark.parametrize("answer", [b"not json", b"[]", b"{}", b'{"count": "3"}', b'{"count": true}'])
def test_a_count_answer_that_is_not_the_workers_is_an_upstream_error(answer: bytes) -> None:
    calls = VllmServer().token_count(REQUIRED["chat/completions"], placement("vllm"))
    next(calls)
    with pytest.raises(UpstreamError, match="`count`"):
        calls.send(answer)


def test_tokenize_goes_to_the_workers_root_not_under_v1() -> None:
    path, _ = OpenAICompatible().request(InferenceRequest(TOKENIZE, {"prompt": "x"}, stream=False), placement("vllm"))
    assert path == "/../tokenize"  # the worker's URL ends in /v1


def test_openai_compatible_workers_get_every_parameter() -> None:
    capabilities = OpenAICompatible.capabilities
    assert capabilities.parameters is None
    assert all(capabilities.understands(s, p) for s in SURFACES for p in (*UNDECLARED, "anything_new"))


def test_ollama_understands_what_its_mapping_reads() -> None:
    capabilities = OllamaNative.capabilities
    assert capabilities.parameters is PARAMETERS
    for surface in SURFACES:
        assert PARAMETERS[surface] == {*REQUIRED[surface], *SAMPLES[surface], *OUTSIDE_THE_MAPPING[surface]}
        assert not any(capabilities.understands(surface, p) for p in UNDECLARED)
    assert capabilities.understands("chat/completions", "tools")
    assert not capabilities.understands("completions", "tools")
    assert not capabilities.understands("embeddings", "temperature")


def test_a_surface_not_served_understands_nothing() -> None:
    chat_only = Capabilities(surfaces=frozenset({"chat/completions"}))
    assert chat_only.understands("chat/completions", "anything")
    assert not chat_only.serves("embeddings") and not chat_only.understands("embeddings", "input")


@pytest.mark.parametrize("surface", SURFACES)
def test_each_declared_ollama_parameter_is_read(surface: Endpoint) -> None:
    """Each parameter alone changes what Ollama gets (`tool_choice` given tools)."""
    for name, value in SAMPLES[surface].items():
        base = REQUIRED[surface] | ({"tools": [WEATHER_TOOL]} if name == "tool_choice" else {})
        assert ollama_payload(surface, base | {name: value}) != ollama_payload(surface, base), name


@pytest.mark.parametrize("surface", SURFACES)
def test_undeclared_parameters_do_not_reach_ollama(surface: Endpoint) -> None:
    declared = REQUIRED[surface] | SAMPLES[surface] | OUTSIDE_THE_MAPPING[surface]
    assert ollama_payload(surface, declared | UNDECLARED) == ollama_payload(surface, declared)


def test_what_ollama_cannot_do_is_refused_not_dropped() -> None:
    with pytest.raises(InvalidRequest) as caught:
        OllamaNative().request(InferenceRequest(CHAT_COMPLETIONS, REQUIRED["chat/completions"] | {"n": 2},
                                                stream=False), placement("ollama"))
    assert caught.value.param == "n"


# --- mappings ---------------------------------------------------------------------------------------------


def test_openai_compatible_requests_go_as_sent_under_the_workers_model_id() -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 2}, "n": 3}
    path, payload = OpenAICompatible().request(InferenceRequest(CHAT_COMPLETIONS, body, stream=False),
                                               placement("vllm", upstream_model="meta-llama/Llama-3.2-3B"))
    assert path == "/chat/completions"
    assert json.loads(payload) == body | {"model": "meta-llama/Llama-3.2-3B"}
    path, _ = OpenAICompatible().request(InferenceRequest(EMBEDDINGS, {"input": "x"}, stream=False),
                                         placement("vllm"))
    assert path == "/embeddings"


def test_llama_cpp_requests_go_as_sent_content_parts_and_max_completion_tokens_included() -> None:
    body = {"model": "chat", "max_completion_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]}]}
    path, payload = LlamaCppServer().request(InferenceRequest(CHAT_COMPLETIONS, body, stream=False),
                                             placement("local", upstream_model="smollm2-135m-instruct"))
    assert path == "/chat/completions"
    assert json.loads(payload) == body | {"model": "smollm2-135m-instruct"}  # llama-server reads them all


def llama_cpp_error(status: int, type_: str, message: str, **extra: int) -> bytes:
    return json.dumps({"error": {"code": status, "message": message, "type": type_, **extra}}).encode()


def test_llama_cpp_refusals_become_ours() -> None:
    refuse = LlamaCppServer.rejection
    too_long = refuse(400, llama_cpp_error(400, "exceed_context_size_error", "the request exceeds the available "
                                           "context size", n_prompt_tokens=3000, n_ctx=2048))
    assert too_long.status_code() == 400
    assert too_long.body()["error"] | {"message": ""} == {"message": "", "type": "invalid_request_error",
                                                           "param": None, "code": "context_length_exceeded"}
    assert "3000" in too_long.message and "2048" in too_long.message
    image = refuse(500, llama_cpp_error(500, "server_error", "image input is not supported - hint: if this is "
                                        "unexpected, you may need to provide the mmproj"))
    assert image.status_code() == 400 and image.param == "messages"  # the client's request, not a 500
    no_embeddings = refuse(501, llama_cpp_error(501, "not_supported_error", "This server does not support "
                                                "embeddings. Start it with `--embeddings`"))
    assert (no_embeddings.status_code(), no_embeddings.param) == (400, "model")  # a chat model asked to embed
    loading = refuse(503, llama_cpp_error(503, "unavailable_error", "Loading model"))
    assert loading.status_code() == 503 and loading.message == "Loading model"
    assert refuse(500, b"plain text").status_code() == 500


def test_openai_compatible_answers_pass_unchanged() -> None:
    answer = b'{"id": "x", "choices": []}'
    request = InferenceRequest(CHAT_COMPLETIONS, {}, stream=False)
    assert OpenAICompatible().answer(request, placement("vllm"), answer, "req_1") is answer


def test_ollama_requests_take_the_workers_model_and_num_ctx() -> None:
    path, payload = OllamaNative().request(InferenceRequest(CHAT_COMPLETIONS, REQUIRED["chat/completions"],
                                                            stream=False), placement("ollama", num_ctx=8192))
    assert path == "/api/chat"
    assert json.loads(payload) == {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}],
                                   "options": {"num_ctx": 8192}, "stream": False}


def test_ollama_answers_become_openai_answers_in_the_clients_encoding() -> None:
    request = InferenceRequest(EMBEDDINGS, {"input": "x", "encoding_format": "base64"}, stream=False)
    body = OllamaNative().answer(request, placement("ollama", upstream_model="all-minilm"),
                                 b'{"embeddings": [[0.5, 1.0]], "prompt_eval_count": 2}', "req_1")
    answer = json.loads(body)
    assert answer["model"] == "all-minilm" and answer["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    assert answer["data"][0]["embedding"] == "AAAAPwAAgD8="  # 0.5 and 1.0 as little-endian float32


@pytest.mark.parametrize("protocol", [OpenAICompatible(), OllamaNative()])
def test_worker_refusals_become_openai_errors(protocol: OpenAICompatible | OllamaNative) -> None:
    vllm = protocol.rejection(400, b'{"object": "error", "message": "bad", "type": "BadRequestError", "param": null, '
                                   b'"code": 400}')
    assert isinstance(vllm, WorkerRejected) and vllm.status_code() == 400 and vllm.message == "bad"
    assert vllm.error_code == "upstream_error" and vllm.body()["error"]["type"] == "invalid_request_error"
    ollama = protocol.rejection(503, b'{"error": "server busy, please try again.  maximum pending requests exceeded"}')
    assert ollama.status_code() == 503 and ollama.message.startswith("server busy")


def test_a_translator_has_no_usage_before_its_final_line() -> None:
    translator = StreamTranslator("completions", model="m")
    assert [c["choices"][0]["text"] for c in translator.feed(b'{"response": "Hi", "done": false}')] == ["Hi"]
    assert not translator.done
    with pytest.raises(ValueError):
        translator.final_usage(prompt_estimate=1, completion_estimate=1)


# --- streams ------------------------------------------------------------------------------------------------


async def test_openai_compatible_streams_are_relayed_as_they_come() -> None:
    chunk = b'{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},' \
            b'"finish_reason":"stop"}]}'
    usage = b'{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,' \
            b'"completion_tokens":1,"total_tokens":4}}'

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": keep-alive\n\ndata: " + chunk + b"\n\ndata: " + usage + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        outcomes: list[StreamOutcome] = []
        captured: list[bytes] = []
        try:
            async with stream_opener() as session:
                response = await session.post(f"http://127.0.0.1:{sock.getsockname()[1]}/v1/chat/completions")
                events = [e async for e in OpenAICompatible().relay(response, StreamRelay(
                    worker_name="w-1", upstream_model="m", endpoint="chat/completions", request_id="req_1",
                    idle_timeout=5, deadline=asyncio.get_running_loop().time() + 10, client_wants_usage=False,
                    prompt_tokens_estimate=1, on_end=outcomes.append, capture=captured, cutoff=StreamCutoff()))]
        finally:
            await runner.cleanup()
    assert events == [b"data: " + chunk + b"\n\n", b"data: [DONE]\n\n"]  # the usage chunk only if asked
    assert captured == [chunk, usage]
    [outcome] = outcomes
    assert outcome.completed and outcome.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
