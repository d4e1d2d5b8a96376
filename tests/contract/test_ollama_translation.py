"""The OpenAI ↔ Ollama translation (`gateway.protocols.ollama*`), pinned on the examples of Ollama's API
documentation (docs/api.md and its "Errors" page), recorded here as literal strings: OpenAI requests →
exact Ollama bodies, Ollama answers → exact OpenAI bodies (all but `created`), and Ollama NDJSON streams →
exact OpenAI SSE through the protocol's relay on a loopback server. What the relay produces is also read
back by the openai SDK's own types and its own stream decoder, so an SDK client sees a well-formed answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import openai
import pytest
from aiohttp import web
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.errors import InvalidRequest, UpstreamError, UpstreamTimeout, WorkerRejected, WorkerUnreachable
from gateway.protocols.base import StreamRelay
from gateway.protocols.ollama import OllamaNative
from gateway.protocols.ollama_answers import StreamTranslator, decode_line, from_ollama, tool_call_id, usage_of
from gateway.protocols.ollama_requests import to_ollama
from gateway.surfaces.request import Endpoint
from gateway.upstream.ndjson_relay import relay_ndjson
from gateway.upstream.sse_relay import StreamCutoff, StreamOutcome
from tests.upstream_streams import stream_opener

REQUEST_ID = "req_0123456789abcdef01234567"
CHAT_ID = "chatcmpl-0123456789abcdef01234567"
CMPL_ID = "cmpl-0123456789abcdef01234567"

# --- recorded Ollama answers (docs/api.md, verbatim but for whitespace) ---------------------------

CHAT_STREAM = b"""\
{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The","images":null},"done":false}
{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}
"""

# The older docs' final line: no `message`, no `done_reason`.
CHAT_STREAM_OLD_FINAL = b"""\
{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The"},"done":false}
{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","done":true,"total_duration":8113331500,"load_duration":6396458,"prompt_eval_count":61,"prompt_eval_duration":398801000,"eval_count":468,"eval_duration":7701267000}
"""

CHAT_STREAM_TOOLS = b"""\
{"model":"llama3.2","created_at":"2025-07-07T20:22:19.184789Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Tokyo"}}}]},"done":false}
{"model":"llama3.2","created_at":"2025-07-07T20:22:19.19314Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":182242375,"load_duration":41295167,"prompt_eval_count":169,"prompt_eval_duration":24573166,"eval_count":15,"eval_duration":115959084}
"""

CHAT_WHOLE = b"""{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z",
"message":{"role":"assistant","content":"Hello! How are you today?"},"done":true,"total_duration":5191566416,
"load_duration":2154458,"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,
"eval_duration":4799921000}"""

CHAT_WHOLE_TOOLS = b"""{"model":"llama3.2","created_at":"2025-07-07T20:32:53.844124Z",
"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Tokyo"}}}]},
"done_reason":"stop","done":true,"total_duration":3244883583,"load_duration":2969184542,"prompt_eval_count":169,
"prompt_eval_duration":141656333,"eval_count":18,"eval_duration":133293625}"""

GENERATE_STREAM = b"""\
{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","response":"The","done":false}
{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","response":"","done":true,"context":[1,2,3],"total_duration":10706818083,"load_duration":6338219291,"prompt_eval_count":26,"prompt_eval_duration":130079000,"eval_count":259,"eval_duration":4232710000}
"""

GENERATE_WHOLE = b"""{"model":"codellama:code","created_at":"2024-07-22T20:47:51.147561Z",
"response":"\\n  if a == 0:\\n    return b\\n  else:\\n    return compute_gcd(b % a, a)\\n\\n\
def compute_lcm(a, b):\\n  result = (a * b) / compute_gcd(a, b)\\n",
"done":true,"done_reason":"stop","context":[1,2,3],"total_duration":1162761250,"load_duration":6683708,
"prompt_eval_count":17,"prompt_eval_duration":201222000,"eval_count":63,"eval_duration":953997000}"""

EMBED_WHOLE = b"""{"model":"all-minilm","embeddings":[[0.010071029,-0.0017594862,0.05007221,0.04692972,0.054916814,
0.008599704,0.105441414,-0.025878139,0.12958129,0.031952348]],"total_duration":14143917,"load_duration":1019500,
"prompt_eval_count":8}"""

# The "Errors that occur while streaming" example of Ollama's docs.
GENERATE_STREAM_ERROR = b"""\
{"model":"gemma3","created_at":"2025-10-26T17:21:21.196249Z","response":" Yes","done":false}
{"model":"gemma3","created_at":"2025-10-26T17:21:21.207235Z","response":".","done":false}
{"model":"gemma3","created_at":"2025-10-26T17:21:21.219166Z","response":"I","done":false}
{"model":"gemma3","created_at":"2025-10-26T17:21:21.231094Z","response":"can","done":false}
{"error":"an error was encountered while running the model"}
"""

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a given city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string",
                                                                  "description": "The city to get the weather for"}},
                       "required": ["city"]},
    },
}


def ollama_body(endpoint: Endpoint, body: dict[str, Any], *, model: str = "llama3.2", num_ctx: int | None = None
                ) -> tuple[str, dict[str, Any]]:
    path, raw = to_ollama(endpoint, body, upstream_model=model, num_ctx=num_ctx)
    decoded = json.loads(raw)
    assert isinstance(decoded, dict)
    return path, decoded


def without_created(value: Any) -> Any:
    assert isinstance(value, dict) and isinstance(value.pop("created"), int)
    return value


# --- requests -------------------------------------------------------------------------------------


def test_chat_request_of_the_docs_with_stream_explicit_and_num_ctx() -> None:
    path, body = ollama_body("chat/completions", {"model": "chat", "messages": [
        {"role": "user", "content": "why is the sky blue?"}]}, num_ctx=8192)
    assert path == "/api/chat"
    assert body == {"model": "llama3.2", "messages": [{"role": "user", "content": "why is the sky blue?"}],
                    "options": {"num_ctx": 8192}, "stream": False}
    _, streamed = ollama_body("chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": True,
                                                   "stream_options": {"include_usage": True}})
    assert streamed == {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def test_chat_request_with_history_and_tools_is_the_docs_request() -> None:
    """OpenAI's shape of the docs' "Chat request (With history, with tools)" gives the docs' body."""
    _, body = ollama_body("chat/completions", {
        "model": "chat",
        "messages": [
            {"role": "user", "content": "what is the weather in Toronto?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Toronto\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "11 degrees celsius"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "user": "someone",
    })
    assert body == {
        "model": "llama3.2",
        "messages": [
            {"role": "user", "content": "what is the weather in Toronto?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}]},
            {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"},
        ],
        "tools": [WEATHER_TOOL],
        "stream": False,
    }
    assert list(body) == ["model", "messages", "tools", "stream"]


def test_chat_sampling_fields_become_options() -> None:
    _, body = ollama_body("chat/completions", {
        "messages": [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}],
        "temperature": 0.2, "top_p": 0.9, "seed": 42, "stop": "\n", "max_tokens": 100,
        "frequency_penalty": 1.0, "presence_penalty": 1.5, "top_k": 20, "repetition_penalty": 1.2,
        "response_format": {"type": "json_object"},
    }, num_ctx=4096)
    assert body == {
        "model": "llama3.2",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
        "format": "json",
        "options": {"top_k": 20, "repeat_penalty": 1.2, "temperature": 0.2, "top_p": 0.9, "seed": 42,
                    "frequency_penalty": 1.0, "presence_penalty": 1.5, "num_predict": 100, "stop": ["\n"],
                    "num_ctx": 4096},
        "stream": False,
    }


def test_structured_output_schema_and_stop_list_and_max_completion_tokens() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}, "available": {"type": "boolean"}},
              "required": ["age", "available"]}
    _, body = ollama_body("chat/completions", {
        "messages": [{"role": "user", "content": "Ollama is 22 years old and busy saving the world."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "status", "schema": schema, "strict": True}},
        "stop": ["user:", "\n\n"], "max_tokens": 10, "max_completion_tokens": 50, "temperature": 0,
    })
    assert body["format"] == schema
    assert body["options"] == {"temperature": 0, "num_predict": 50, "stop": ["user:", "\n\n"]}
    _, text = ollama_body("chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                               "response_format": {"type": "text"}})
    assert "format" not in text and "options" not in text


def test_content_parts_join_and_data_url_images() -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAG0AAABmCAYAAADBPx"
    _, body = ollama_body("chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "text", "text": "Answer briefly."},
    ]}]})
    assert body["messages"] == [{"role": "user", "content": "what is in this image?\nAnswer briefly.",
                                 "images": [png]}]
    with pytest.raises(InvalidRequest) as caught:
        to_ollama("chat/completions", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]},
            upstream_model="m", num_ctx=None)
    assert caught.value.param == "messages[0].content[0]"


def test_tool_choice_without_ollama_counterpart() -> None:
    other = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
    base = {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL, other]}
    assert "tools" not in ollama_body("chat/completions", base | {"tool_choice": "none"})[1]
    named = {"type": "function", "function": {"name": "other"}}
    assert ollama_body("chat/completions", base | {"tool_choice": named})[1]["tools"] == [other]
    assert ollama_body("chat/completions", base | {"tool_choice": "required"})[1]["tools"] == [WEATHER_TOOL, other]


def test_ollama_extras_pass_and_the_catalog_num_ctx_wins() -> None:
    _, body = ollama_body("chat/completions", {
        "messages": [{"role": "user", "content": "x"}], "keep_alive": "10m", "think": True,
        "options": {"num_ctx": 128000, "mirostat": 1, "temperature": 0.1}, "temperature": 0.7,
    }, num_ctx=8192)
    assert body["keep_alive"] == "10m" and body["think"] is True
    assert body["options"] == {"num_ctx": 8192, "mirostat": 1, "temperature": 0.7}
    _, effort = ollama_body("chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                                 "reasoning_effort": "none"})
    assert effort["think"] is False


def test_completions_request_is_a_plain_generate() -> None:
    path, body = ollama_body("completions", {"model": "chat", "prompt": "def compute_gcd(a, b):",
                                             "suffix": "    return result", "temperature": 0, "echo": False})
    assert path == "/api/generate"
    # OpenAI's and vLLM's default max_tokens for completions is 16; Ollama's is unlimited.
    assert body == {"model": "llama3.2", "prompt": "def compute_gcd(a, b):", "suffix": "    return result",
                    "options": {"temperature": 0, "num_predict": 16}, "stream": False}
    _, one = ollama_body("completions", {"prompt": ["Why is the sky blue?"], "max_tokens": 100, "stream": True},
                         num_ctx=2048)
    assert one == {"model": "llama3.2", "prompt": "Why is the sky blue?",
                   "options": {"num_predict": 100, "num_ctx": 2048}, "stream": True}
    for prompt in (["a", "b"], [1, 2, 3]):
        with pytest.raises(InvalidRequest) as caught:
            to_ollama("completions", {"prompt": prompt}, upstream_model="m", num_ctx=None)
        assert caught.value.param == "prompt"


def test_embeddings_request_is_the_docs_embed() -> None:
    path, body = ollama_body("embeddings", {"model": "embed", "input": ["Why is the sky blue?",
                                                                       "Why is the grass green?"],
                                            "encoding_format": "base64", "dimensions": 8}, model="all-minilm",
                             num_ctx=512)
    assert path == "/api/embed"
    assert body == {"model": "all-minilm", "input": ["Why is the sky blue?", "Why is the grass green?"],
                    "truncate": False, "dimensions": 8, "options": {"num_ctx": 512}}
    assert ollama_body("embeddings", {"input": "Why is the sky blue?"}, model="all-minilm")[1] == {
        "model": "all-minilm", "input": "Why is the sky blue?", "truncate": False}
    with pytest.raises(InvalidRequest):
        to_ollama("embeddings", {"input": [[1, 2, 3]]}, upstream_model="m", num_ctx=None)


def test_what_ollama_cannot_do_is_a_clear_400() -> None:
    with pytest.raises(InvalidRequest) as n:
        to_ollama("chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2},
                  upstream_model="m", num_ctx=None)
    assert n.value.param == "n"
    with pytest.raises(InvalidRequest) as arguments:
        to_ollama("chat/completions", {"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]},
            upstream_model="m", num_ctx=None)
    assert arguments.value.param == "messages[0].tool_calls[0].function.arguments"
    with pytest.raises(InvalidRequest):
        to_ollama("chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                       "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
                  upstream_model="m", num_ctx=None)


# --- whole answers --------------------------------------------------------------------------------


def test_chat_answer_of_the_docs() -> None:
    body = json.loads(from_ollama("chat/completions", CHAT_WHOLE, model="llama3.2", request_id=REQUEST_ID))
    assert without_created(body) == {
        "id": CHAT_ID, "object": "chat.completion", "model": "llama3.2",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How are you today?"},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 26, "completion_tokens": 298, "total_tokens": 324},
    }
    ChatCompletion.model_validate(body | {"created": 0})


def test_chat_answer_with_tool_calls() -> None:
    raw = from_ollama("chat/completions", CHAT_WHOLE_TOOLS, model="llama3.2", request_id=REQUEST_ID)
    body = json.loads(raw)
    assert without_created(body) == {
        "id": CHAT_ID, "object": "chat.completion", "model": "llama3.2",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": tool_call_id(CHAT_ID, 0), "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}]},
            "logprobs": None, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 169, "completion_tokens": 18, "total_tokens": 187},
    }
    completion = ChatCompletion.model_validate_json(raw)
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and calls[0].type == "function"
    assert json.loads(calls[0].function.arguments) == {"city": "Tokyo"}
    assert calls[0].id.startswith("call_") and len(calls[0].id) == 29


def test_ids_are_the_gateway_request_ids_or_random() -> None:
    chat = json.loads(from_ollama("chat/completions", CHAT_WHOLE, model="m", request_id="trace-123"))
    again = json.loads(from_ollama("chat/completions", CHAT_WHOLE, model="m", request_id="trace-123"))
    assert chat["id"].startswith("chatcmpl-") and len(chat["id"]) == len("chatcmpl-") + 24
    assert chat["id"] != again["id"]  # a client's request id may repeat: completion ids must not


def test_generate_answer_of_the_docs() -> None:
    raw = from_ollama("completions", GENERATE_WHOLE, model="codellama:code", request_id=REQUEST_ID)
    body = json.loads(raw)
    assert without_created(body) == {
        "id": CMPL_ID, "object": "text_completion", "model": "codellama:code",
        "choices": [{"index": 0, "text": "\n  if a == 0:\n    return b\n  else:\n    return compute_gcd(b % a, a)\n"
                                         "\ndef compute_lcm(a, b):\n  result = (a * b) / compute_gcd(a, b)\n",
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 17, "completion_tokens": 63, "total_tokens": 80},
    }
    Completion.model_validate_json(raw)
    cut = GENERATE_WHOLE.replace(b'"done_reason":"stop"', b'"done_reason":"length"')
    assert json.loads(from_ollama("completions", cut, model="m", request_id="r"))["choices"][0]["finish_reason"] \
        == "length"


def test_embed_answer_of_the_docs_as_floats_and_as_base64() -> None:
    raw = from_ollama("embeddings", EMBED_WHOLE, model="all-minilm", request_id=REQUEST_ID)
    vector = [0.010071029, -0.0017594862, 0.05007221, 0.04692972, 0.054916814,
              0.008599704, 0.105441414, -0.025878139, 0.12958129, 0.031952348]
    assert json.loads(raw) == {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": vector}],
                               "model": "all-minilm", "usage": {"prompt_tokens": 8, "total_tokens": 8}}
    CreateEmbeddingResponse.model_validate_json(raw)
    packed = json.loads(from_ollama("embeddings", EMBED_WHOLE, model="all-minilm", request_id=REQUEST_ID,
                                    encoding_format="base64"))
    floats = struct.unpack("<10f", base64.b64decode(packed["data"][0]["embedding"]))
    assert floats == pytest.approx(vector, rel=1e-6)


def test_error_and_garbage_answers() -> None:
    with pytest.raises(WorkerRejected) as caught:
        from_ollama("chat/completions", b'{"error":"model runner has unexpectedly stopped"}', model="m",
                    request_id="r")
    assert caught.value.message == "model runner has unexpectedly stopped"
    assert caught.value.status_code() == 500 and caught.value.is_retryable
    for raw in (b"<garbage> {not json", b'{"message": {"content": 3}}', b"[]"):
        with pytest.raises(UpstreamError):
            from_ollama("chat/completions", raw, model="m", request_id="r", worker_name="cpu-1")
    with pytest.raises(UpstreamError):
        from_ollama("embeddings", b"{not json", model="m", request_id="r")


# --- streams, through the relay -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def ndjson_server(pieces: Sequence[bytes], *, then: str = "end", content_type: str = "application/x-ndjson"
                        ) -> AsyncIterator[str]:
    """A loopback server that answers every POST with `pieces`, then ends the body (`end`), hangs
    (`hang`) or closes the connection without ending it (`drop`)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
        if then == "hang":
            await asyncio.Event().wait()
        if then == "drop":
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/{path:.*}", handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.25, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        await web.SockSite(runner, sock).start()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()
        sock.close()


async def relay(pieces: Sequence[bytes], *, endpoint: Endpoint = "chat/completions", usage: bool = False,
                then: str = "end", idle: float = 5.0, capture: list[bytes] | None = None
                ) -> tuple[list[bytes], StreamOutcome]:
    outcomes: list[StreamOutcome] = []
    async with ndjson_server(pieces, then=then) as url, stream_opener() as session:
        response = await session.post(url + "/api/chat")
        deadline = asyncio.get_running_loop().time() + 10
        events = [event async for event in OllamaNative().relay(response, StreamRelay(
            worker_name="cpu-1", upstream_model="llama3.2", endpoint=endpoint, request_id=REQUEST_ID,
            idle_timeout=idle, deadline=deadline, client_wants_usage=usage, prompt_tokens_estimate=7,
            on_end=outcomes.append, capture=capture, cutoff=StreamCutoff()))]
    assert len(outcomes) == 1
    assert all(e.startswith(b"data: ") and e.endswith(b"\n\n") and e.count(b"\n\n") == 1 for e in events)
    return events, outcomes[0]


def payloads(events: list[bytes]) -> list[Any]:
    """The JSON of each event (without `created`), `"[DONE]"` for the terminator."""
    out: list[Any] = []
    for event in events:
        data = event[6:-2]
        if data == b"[DONE]":
            out.append("[DONE]")
            continue
        value = json.loads(data)
        if "created" in value:
            without_created(value)
        out.append(value)
    return out


def chunk(delta: dict[str, Any], finish: str | None = None, *, usage_null: bool = False) -> dict[str, Any]:
    value: dict[str, Any] = {"id": CHAT_ID, "object": "chat.completion.chunk", "model": "llama3.2",
                             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage_null:
        value["usage"] = None
    return value


async def sdk_reads(events: list[bytes], *, completions: bool = False) -> list[Any]:
    """What the openai SDK itself makes of the relayed bytes (its SSE decoder, its types)."""
    async with ndjson_server(events, content_type="text/event-stream") as url, \
            openai.AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0, timeout=5) as client:
        if completions:
            return [c async for c in await client.completions.create(model="m", prompt="x", stream=True)]
        return [c async for c in await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True)]


async def test_chat_stream_of_the_docs() -> None:
    events, outcome = await relay([CHAT_STREAM])
    assert payloads(events) == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "The"}),
        chunk({}, "stop"),
        "[DONE]",
    ]
    assert outcome.completed and outcome.error is None and not outcome.client_disconnected
    assert outcome.usage == {"prompt_tokens": 26, "completion_tokens": 282, "total_tokens": 308}
    assert not outcome.usage_counted_by_gateway
    assert outcome.content_chunks == 1 and outcome.chunks == 2 and outcome.first_content_at is not None
    for event in events[:-1]:
        ChatCompletionChunk.model_validate_json(event[6:-2])
    parsed = await sdk_reads(events)
    assert "".join(c.choices[0].delta.content or "" for c in parsed) == "The"
    assert parsed[-1].choices[0].finish_reason == "stop"


async def test_chat_stream_with_usage_as_openai_sends_it() -> None:
    captured: list[bytes] = []
    events, _ = await relay([CHAT_STREAM], usage=True, capture=captured)
    assert payloads(events) == [
        chunk({"role": "assistant", "content": ""}, usage_null=True),
        chunk({"content": "The"}, usage_null=True),
        chunk({}, "stop", usage_null=True),
        {"id": CHAT_ID, "object": "chat.completion.chunk", "model": "llama3.2", "choices": [],
         "usage": {"prompt_tokens": 26, "completion_tokens": 282, "total_tokens": 308}},
        "[DONE]",
    ]
    parsed = await sdk_reads(events)
    assert parsed[-1].choices == [] and parsed[-1].usage is not None and parsed[-1].usage.total_tokens == 308
    # What the response cache keeps does not depend on this client: no `usage: null`s, the usage chunk kept.
    assert payloads([b"data: " + c + b"\n\n" for c in captured]) == [
        chunk({"role": "assistant", "content": ""}), chunk({"content": "The"}), chunk({}, "stop"),
        payloads(events)[3]]


async def test_the_capture_keeps_the_usage_chunk_the_client_did_not_ask_for() -> None:
    captured: list[bytes] = []
    events, _ = await relay([CHAT_STREAM], capture=captured)
    assert len(events) == 4 and len(captured) == 4
    assert json.loads(captured[-1])["usage"] == {"prompt_tokens": 26, "completion_tokens": 282, "total_tokens": 308}
    captured.clear()
    await relay([GENERATE_STREAM_ERROR], endpoint="completions", capture=captured)
    assert len(captured) == 4  # the chunks before the error (the pipeline caches only completed streams)


async def test_stream_split_anywhere_and_the_old_final_line() -> None:
    whole = CHAT_STREAM_OLD_FINAL
    events, outcome = await relay([whole[i:i + 7] for i in range(0, len(whole), 7)])
    assert payloads(events) == [chunk({"role": "assistant", "content": ""}), chunk({"content": "The"}),
                                chunk({}, "stop"), "[DONE]"]
    assert outcome.usage == {"prompt_tokens": 61, "completion_tokens": 468, "total_tokens": 529}


async def test_chat_stream_with_tool_calls() -> None:
    events, outcome = await relay([CHAT_STREAM_TOOLS])
    assert payloads(events) == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"tool_calls": [{"index": 0, "id": tool_call_id(CHAT_ID, 0), "type": "function",
                               "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}]}),
        chunk({}, "tool_calls"),
        "[DONE]",
    ]
    assert outcome.content_chunks == 1
    parsed = await sdk_reads(events)
    calls = parsed[1].choices[0].delta.tool_calls
    assert calls is not None and calls[0].function is not None and calls[0].function.name == "get_weather"
    assert parsed[-1].choices[0].finish_reason == "tool_calls"


async def test_generate_stream_of_the_docs() -> None:
    events, outcome = await relay([GENERATE_STREAM], endpoint="completions", usage=True)
    text = {"id": CMPL_ID, "object": "text_completion", "model": "llama3.2", "usage": None}
    assert payloads(events) == [
        text | {"choices": [{"index": 0, "text": "The", "logprobs": None, "finish_reason": None}]},
        text | {"choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]},
        {"id": CMPL_ID, "object": "text_completion", "model": "llama3.2", "choices": [],
         "usage": {"prompt_tokens": 26, "completion_tokens": 259, "total_tokens": 285}},
        "[DONE]",
    ]
    assert outcome.completed and outcome.content_chunks == 1
    Completion.model_validate_json(events[1][6:-2])
    parsed = await sdk_reads(events, completions=True)
    assert "".join(c.choices[0].text for c in parsed if c.choices) == "The"


async def test_error_line_of_the_docs_becomes_an_error_event_and_done() -> None:
    events, outcome = await relay([GENERATE_STREAM_ERROR], endpoint="completions")
    texts = [p["choices"][0]["text"] for p in payloads(events)[:4]]
    assert texts == [" Yes", ".", "I", "can"]
    assert payloads(events)[4:] == [
        {"error": {"message": "an error was encountered while running the model", "type": "server_error",
                   "param": None, "code": "upstream_server_error"}},
        "[DONE]",
    ]
    assert not outcome.completed and isinstance(outcome.error, WorkerRejected)
    assert outcome.usage is None and outcome.content_chunks == 4  # billed by what was streamed
    with pytest.raises(openai.APIError, match="an error was encountered while running the model"):
        await sdk_reads(events, completions=True)


async def test_a_chat_stream_error_before_any_content() -> None:
    events, outcome = await relay([b'{"error":"model \\"nope\\" not found, try pulling it first"}\n'])
    assert payloads(events) == [{"error": {"message": "model \"nope\" not found, try pulling it first",
                                           "type": "server_error", "param": None, "code": "upstream_server_error"}},
                                "[DONE]"]
    assert outcome.first_content_at is None


async def test_a_stream_without_its_done_line_is_an_error_not_a_finish() -> None:
    first_line = CHAT_STREAM.split(b"\n")[0] + b"\n"
    events, outcome = await relay([first_line])
    final = payloads(events)
    assert [p.get("choices", [{}])[0].get("finish_reason") for p in final[:-2]] == [None, None]
    assert final[-2]["error"]["code"] == "upstream_error" and "done" in final[-2]["error"]["message"]
    assert final[-1] == "[DONE]"
    assert not outcome.completed and isinstance(outcome.error, UpstreamError)
    with pytest.raises(openai.APIError):
        await sdk_reads(events)


async def test_a_broken_connection_and_a_stall_and_garbage() -> None:
    first_line = CHAT_STREAM.split(b"\n")[0] + b"\n"
    events, outcome = await relay([first_line], then="drop")
    assert isinstance(outcome.error, (WorkerUnreachable, UpstreamError)) and payloads(events)[-1] == "[DONE]"
    assert "error" in payloads(events)[-2]
    events, outcome = await relay([first_line], then="hang", idle=0.2)
    assert isinstance(outcome.error, UpstreamTimeout) and payloads(events)[-2]["error"]["code"] == "upstream_timeout"
    events, outcome = await relay([b"<garbage 0> {not json\n"])
    assert payloads(events) == [{"error": {"message": "worker 'cpu-1' sent a malformed stream line",
                                           "type": "api_error", "param": None, "code": "upstream_error"}}, "[DONE]"]


async def test_a_client_leaving_closes_the_worker_response_and_reports_once() -> None:
    outcomes: list[StreamOutcome] = []
    async with ndjson_server([CHAT_STREAM.split(b"\n")[0] + b"\n"], then="hang") as url, \
            stream_opener() as session:
        response = await session.post(url + "/api/chat")
        translator = StreamTranslator("chat/completions", model="llama3.2", worker_name="cpu-1")
        stream = relay_ndjson(response, translator, worker_name="cpu-1", idle_timeout=5,
                              deadline=asyncio.get_running_loop().time() + 10, client_wants_usage=False,
                              prompt_tokens_estimate=7, on_end=outcomes.append)
        assert (await anext(stream)).startswith(b"data: ")
        await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        assert response.closed
    [outcome] = outcomes
    assert outcome.client_disconnected and not outcome.completed and outcome.error is None
    assert outcome.content_chunks == 1


def test_missing_counts_are_estimated_and_flagged() -> None:
    raw = b'{"message":{"content":""},"done":true,"done_reason":"stop","eval_count":5}'
    translator = StreamTranslator("chat/completions", model="m")
    assert [c["choices"][0].get("finish_reason") for c in translator.feed(raw)] == [None, "stop"]
    assert translator.done
    usage, estimated = usage_of(decode_line(raw, "w"), prompt_estimate=40, completion_estimate=3)
    assert usage == {"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45} and estimated
    assert translator.final_usage(prompt_estimate=40, completion_estimate=3) == (usage, True)


def test_thinking_is_reasoning_content() -> None:
    line = msgspec.json.encode({"message": {"role": "assistant", "content": "", "thinking": "Hmm"}, "done": False})
    translator = StreamTranslator("chat/completions", model="m", request_id=REQUEST_ID)
    chunks = translator.feed(line)
    assert chunks[1]["choices"][0]["delta"] == {"reasoning_content": "Hmm"}
    whole = from_ollama("chat/completions", msgspec.json.encode(
        {"message": {"role": "assistant", "content": "42", "thinking": "Hmm"}, "done": True, "done_reason": "stop"}),
        model="m", request_id=REQUEST_ID)
    assert json.loads(whole)["choices"][0]["message"] == {"role": "assistant", "content": "42",
                                                          "reasoning_content": "Hmm"}
