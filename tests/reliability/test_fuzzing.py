"""Figure 14: bad input never makes the gateway fail.

- schemathesis generates requests from the gateway's own OpenAPI schema (valid and invalid bodies, path
  parameters) for every operation, against real gateways in front of simulated vLLM and Ollama workers;
  Hypothesis adds what schemathesis never sends (bodies that are not JSON or not UTF-8, garbled keys,
  cache directives and request ids). No answer is a 5xx; every error is an OpenAI error object.
- Oversize headers get 431, oversize bodies 413 (with or without a content-length).
- Malformed streams and answers from workers end in an error event and `[DONE]` (or a normalized error),
  never in a broken connection or a 500.

`RELIABILITY_FUZZ_EXAMPLES` sets the generated examples per operation (`make reliability`: 1000)."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import create_app, load_settings
from routing.catalog import load_catalog
from simulator import SimulatorConfig, SimulatorThread
from testkit.figures import record_figure
from tests.conftest import SIM_MODEL, start_gateway
from tests.reliability.asgi_workers import Answer, answering_worker
from tests.servers import ServerThread

pytestmark = pytest.mark.figure(14)
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES", "50"))
FIGURE_EXAMPLES = 1000
MODELS = ["chat", "quick", "local"]
WORKERS = ["sim-vllm", "sim-ollama"]
CONTEXT_TYPES = ["goals", "reminders"]
COACHING = """
defaults: {max_tokens: 8, temperature: 0.5, history_tokens: 200}
session_ttl: 600
context_types:
  goals: {system_prompt: You are a goals coach.}
  reminders: {system_prompt: Remind briefly., model: local, max_tokens: 4}
"""


def fuzz_catalog(vllm_url: str, ollama_url: str) -> str:
    """`chat` and `quick` on a simulated vLLM worker, `local` on a simulated Ollama worker: healthy
    models only, so that any 5xx is the gateway's own failure."""
    return f"""
models:
  - name: chat
  - name: quick
  - name: local
routing:
  default_model: chat
  routes:
    - {{pattern: 'quick|reminder', model: quick, name: quick-rule}}
workers:
  - name: sim-vllm
    kind: vllm
    base_url: {vllm_url}/v1
    timeouts: {{connect: 2, first_byte: 20, idle: 10, total: 60}}
    models:
      - {{name: chat, upstream_id: {SIM_MODEL}}}
      - {{name: quick, upstream_id: {SIM_MODEL}}}
  - name: sim-ollama
    kind: ollama
    base_url: {ollama_url}
    timeouts: {{connect: 2, first_byte: 20, idle: 10, total: 60}}
    models:
      - {{name: local, upstream_id: {SIM_MODEL}}}
"""


@pytest.fixture(scope="module")
def ollama_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(kind="ollama", models=(SIM_MODEL,), seed=3)) as sim:
        yield sim


def _gateway(vllm_sim: SimulatorThread, ollama_sim: SimulatorThread, directory: Path) -> ServerThread:
    """A gateway started from a catalog file (so that `POST /admin/reload` has one to read)."""
    coaching, catalog = directory / "coaching.yaml", directory / "models.yaml"
    coaching.write_text(COACHING)
    catalog.write_text(fuzz_catalog(vllm_sim.url, ollama_sim.url))
    return start_gateway(catalog.read_text(), source=str(catalog), GATEWAY_COACHING_CONFIG=str(coaching),
                         GATEWAY_CAPTURE_DIR=str(directory / "captures"))


@pytest.fixture(scope="module")
def serving_gateway(vllm_sim: SimulatorThread, ollama_sim: SimulatorThread,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """For the inference, mobile, probe and read routes (open mode: no keys)."""
    with _gateway(vllm_sim, ollama_sim, tmp_path_factory.mktemp("serving")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def admin_gateway(vllm_sim: SimulatorThread, ollama_sim: SimulatorThread,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """For the admin routes (open mode: loopback clients are admins), which change workers and keys: a
    gateway of their own, so that what they change never reaches the serving gateway's traffic."""
    with _gateway(vllm_sim, ollama_sim, tmp_path_factory.mktemp("admin")) as gateway:
        yield gateway


def _narrowed(document: dict[str, Any]) -> dict[str, Any]:
    """The served schema with `model`, `context_type` and worker names limited to what this gateway has
    (valid cases then reach the workers; invalid ones still try every other string). Workers are never
    removed by name, so that every admin operation keeps real workers to act on."""
    document = copy.deepcopy(document)
    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            if path.startswith("/admin/workers/{name}") and (method, path) != ("delete", "/admin/workers/{name}"):
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "name":
                        parameter["schema"] = {"type": "string", "enum": WORKERS}
            contents = operation.get("requestBody", {}).get("content", {})
            content = contents.get("application/json") or contents.get("multipart/form-data") or {}
            properties = content.get("schema", {}).get("properties", {})
            if {"messages", "prompt", "input", "file"} & set(properties):
                properties["model"] = {"type": "string", "enum": MODELS}
            if "context_type" in properties:
                properties["context_type"] = {"type": "string", "enum": CONTEXT_TYPES}
    return document


@functools.cache
def served_schema() -> dict[str, Any]:
    """The OpenAPI document the gateway serves at /schema/openapi.json (it does not depend on the catalog;
    built here at collection time, so that each operation is a test of its own)."""
    app = create_app(load_settings({"LOG_LEVEL": "warning"}), load_catalog(str(REPO / "config" / "models.yaml")),
                     background=False)

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # (litestar's stricter ASGI types)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get("/schema/openapi.json")

    response = asyncio.run(fetch())
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def test_the_fuzzed_schema_is_the_served_one(serving_gateway: ServerThread) -> None:
    served = httpx.get(serving_gateway.url + "/schema/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json()["paths"] == served_schema()["paths"]


@dataclass
class Tally:
    """Requests sent per operation, and the 5xx answers among them."""

    calls: Counter[str] = field(default_factory=Counter)
    with_input: set[str] = field(default_factory=set)
    server_errors: list[str] = field(default_factory=list)

    def count(self, label: str, status: int) -> None:
        """One answer to an operation: counted, and remembered when it is a 5xx."""
        self.calls[label] += 1
        if status >= 500:
            self.server_errors.append(f"{label} -> {status}")

    def record(self, gateway: str) -> None:
        fewest = min((self.calls[op] for op in self.with_input), default=0)
        record_figure(14, f"fewest fuzzed requests per operation with input ({gateway})", fewest,
                      threshold=f">= {FIGURE_EXAMPLES}", met=fewest >= FIGURE_EXAMPLES, unit="requests")
        record_figure(14, f"fuzzed requests ({gateway}, {len(self.calls)} operations)",
                      sum(self.calls.values()), threshold="-", met=True, unit="requests")
        record_figure(14, f"5xx answers to fuzzed requests ({gateway})", len(self.server_errors),
                      threshold="0", met=not self.server_errors, unit="responses")


@pytest.fixture(scope="module")
def serving_tally() -> Iterator[Tally]:
    counts = Tally()
    yield counts
    counts.record("serving routes")


@pytest.fixture(scope="module")
def admin_tally() -> Iterator[Tally]:
    counts = Tally()
    yield counts
    counts.record("admin routes")


def assert_openai_error(response: httpx.Response | schemathesis.Response) -> None:
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, response.text
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, response.text
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)


def assert_error_shape(response: httpx.Response | schemathesis.Response, path: str) -> None:
    """Anthropic's error object on its Messages paths, OpenAI's everywhere else."""
    if not path.startswith("/v1/messages"):
        assert_openai_error(response)
        return
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", response.text
    assert set(body["error"]) == {"type", "message"} and body["error"]["message"], response.text


def check_answer(case: schemathesis.Case[Any], gateway: ServerThread, tally: Tally) -> None:
    label = case.operation.label
    if case.operation.body or case.operation.path_parameters:
        tally.with_input.add(label)
    response = case.call(base_url=gateway.url, timeout=60)
    tally.count(label, response.status_code)
    assert response.status_code < 500, f"{response.status_code} {response.text[:300]}\n{case.as_curl_command()}"
    if response.status_code >= 400:
        assert_error_shape(response, case.operation.path)


FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))
SCHEMA = schemathesis.openapi.from_dict(_narrowed(served_schema()))


@SCHEMA.exclude(path_regex="^/admin/").parametrize()
@FUZZ_SETTINGS
def test_generated_requests_never_get_a_5xx(case: schemathesis.Case[Any], serving_gateway: ServerThread,
                                            serving_tally: Tally) -> None:
    check_answer(case, serving_gateway, serving_tally)


@SCHEMA.include(path_regex="^/admin/").parametrize()
@FUZZ_SETTINGS
def test_generated_admin_requests_never_get_a_5xx(case: schemathesis.Case[Any], admin_gateway: ServerThread,
                                                  admin_tally: Tally) -> None:
    check_answer(case, admin_gateway, admin_tally)


def _body_routes() -> list[tuple[str, str, bytes]]:
    """(gateway, path, example body) of every operation with a JSON body, path parameters filled in."""
    routes = []
    for path, path_item in served_schema()["paths"].items():
        for operation in path_item.values():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content is not None:
                filled = path.replace("{name}", "sim-ollama" if "/models/" in path else "sim-vllm")
                routes.append(("admin" if path.startswith("/admin/") else "serving", filled,
                               json.dumps(content["example"]).encode()))
    return routes


def _damaged(example: bytes) -> st.SearchStrategy[bytes]:
    """Bytes that are not a valid JSON document: random bytes, or the example with random bytes (invalid
    UTF-8 among them) put in, or cut short."""
    inserted = st.tuples(st.integers(0, len(example)), st.binary(min_size=1, max_size=8)).map(
        lambda cut: example[:cut[0]] + cut[1] + example[cut[0]:])
    return st.one_of(st.binary(max_size=256), inserted, st.integers(0, len(example)).map(lambda n: example[:n]))


@pytest.mark.parametrize(("gateway", "path", "example"), _body_routes(), ids=lambda v: v if isinstance(v, str) else "")
def test_damaged_bodies_never_get_a_5xx(gateway: str, path: str, example: bytes, request: pytest.FixtureRequest
                                        ) -> None:
    """Bytes schemathesis never sends (it sends JSON): invalid UTF-8, broken documents, random bytes."""
    server: ServerThread = request.getfixturevalue(f"{gateway}_gateway")
    tally: Tally = request.getfixturevalue(f"{gateway}_tally")
    label = f"POST {path} (damaged bodies)"
    tally.with_input.add(label)

    @FUZZ_SETTINGS
    @given(raw=_damaged(example))
    def post(raw: bytes) -> None:
        response = httpx.post(server.url + path, content=raw, headers={"content-type": "application/json"},
                              timeout=60)
        tally.count(label, response.status_code)
        assert response.status_code < 500, f"{response.status_code} {response.text[:300]} for {raw!r}"
        if response.status_code >= 400:
            assert_error_shape(response, path)

    post()


KEY = "sk-gw-fuzz-user-key-0123456789"
_HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=80)
_HEADER_VALUES = {
    "authorization": st.one_of(_HEADER_TEXT, st.sampled_from([f"Bearer {KEY}", f"bearer  {KEY}", "Bearer", "Basic x",
                                                              f"Bearer {KEY} extra", f"Bearer\t{KEY}"])),
    "x-api-key": st.one_of(_HEADER_TEXT, st.just(KEY)),
    "api-key": _HEADER_TEXT,
    "cache-control": st.one_of(_HEADER_TEXT, st.sampled_from(["no-cache", "no-store", "max-age=-1", "s-maxage=1,,,",
                                                              "no-cache, no-store", "max-age=1" + "0" * 30])),
    "x-request-id": _HEADER_TEXT,
    "content-type": st.one_of(_HEADER_TEXT, st.just("application/json; charset=latin-1")),
    "accept": _HEADER_TEXT,
    "accept-encoding": st.one_of(_HEADER_TEXT, st.just("gzip, br, zstd")),
    "origin": _HEADER_TEXT,
}


@pytest.fixture(scope="module")
def keyed_gateway(vllm_sim: SimulatorThread, ollama_sim: SimulatorThread) -> Iterator[ServerThread]:
    with start_gateway(fuzz_catalog(vllm_sim.url, ollama_sim.url), LLM_API_KEY=KEY, CORS_ORIGINS="https://app.example"
                       ) as gateway:
        yield gateway


def test_odd_headers_never_get_a_5xx(keyed_gateway: ServerThread, serving_tally: Tally) -> None:
    """Keys, cache directives, request ids and content types as a client may garble them."""
    label = "POST /v1/chat/completions (odd headers)"
    serving_tally.with_input.add(label)
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})

    @FUZZ_SETTINGS
    @given(headers=st.fixed_dictionaries({}, optional=_HEADER_VALUES), stream=st.booleans())
    def post(headers: dict[str, str], stream: bool) -> None:
        content = body if not stream else body[:-1] + ', "stream": true}'
        response = httpx.post(keyed_gateway.url + "/v1/chat/completions", content=content.encode(), timeout=60,
                              headers=[(name.encode(), value.strip(" \t").encode("latin-1"))
                                       for name, value in headers.items()])
        serving_tally.count(label, response.status_code)
        assert response.status_code < 500, f"{response.status_code} {response.text[:300]} for {headers!r}"
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}

    post()


# --- oversize headers and bodies --------------------------------------------------------------------------

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def small_limits(vllm_sim: SimulatorThread, ollama_sim: SimulatorThread) -> Iterator[ServerThread]:
    """A gateway that takes 4 KiB of headers and 64 KiB of body."""
    with start_gateway(fuzz_catalog(vllm_sim.url, ollama_sim.url), GATEWAY_MAX_HEADER_BYTES="4096",
                       GATEWAY_MAX_BODY_BYTES="65536") as gateway:
        yield gateway


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_oversize_headers_are_431(small_limits: ServerThread) -> None:
    url = small_limits.url + "/v1/chat/completions"
    assert httpx.post(url, json=CHAT, headers={"x-padding": "a" * 3500}).status_code == 200
    one_big = httpx.post(url, json=CHAT, headers={"x-padding": "a" * 5000})
    assert openai_error(one_big, 431)["code"] == "headers_too_large"
    assert one_big.headers["x-request-id"]
    many = {f"x-pad-{i}": "b" * 100 for i in range(60)}
    assert openai_error(httpx.post(url, json=CHAT, headers=many), 431)["type"] == "invalid_request_error"
    assert openai_error(httpx.get(small_limits.url + "/livez", headers=many), 431)
    assert httpx.post(url, json=CHAT).status_code == 200  # the gateway is unharmed
    record_figure(14, "oversize headers answered 431", 3, threshold="431", met=True, unit="requests")


def test_the_default_header_limit_is_16_kib(serving_gateway: ServerThread) -> None:
    url = serving_gateway.url + "/v1/chat/completions"
    assert httpx.post(url, json=CHAT, headers={"x-padding": "a" * 15_000}).status_code == 200
    openai_error(httpx.post(url, json=CHAT, headers={"x-padding": "a" * 17_000}), 431)


def test_oversize_bodies_are_413_with_or_without_a_length(small_limits: ServerThread) -> None:
    url = small_limits.url + "/v1/chat/completions"
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert openai_error(httpx.post(url, json=big), 413)["code"] == "payload_too_large"

    def chunked() -> Iterator[bytes]:  # no content-length: transfer-encoding chunked
        yield b'{"model": "chat", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}]}'

    response = httpx.post(url, content=chunked(), headers={"content-type": "application/json"})
    assert openai_error(response, 413)["code"] == "payload_too_large"
    just_under = {**CHAT, "padding": "x" * 60_000}  # an extra field the worker ignores
    assert httpx.post(url, json=just_under).status_code == 200
    record_figure(14, "oversize bodies answered 413", 2, threshold="413", met=True, unit="requests")


def test_a_lying_content_length_is_refused(small_limits: ServerThread) -> None:
    """A content-length past the limit is refused before the body is read."""
    port = small_limits.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 10000000000\r\n\r\n{")
        head = sock.recv(65536).split(b"\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 413"), head


# --- malformed streams from workers ----------------------------------------------------------------------

_CONTENT = (b'data: {"id": "c", "object": "chat.completion.chunk", '
            b'"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n')
_FINISH = (b'data: {"id": "c", "object": "chat.completion.chunk", '
           b'"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n')
_DONE = b"data: [DONE]\n\n"
BROKEN_STREAMS: dict[str, list[bytes]] = {
    "not_json": [_CONTENT, b"data: this is { not json\n\n", _DONE],
    "json_number": [_CONTENT, b"data: 42\n\n", _DONE],
    "json_array": [b"data: []\n\n", _DONE],
    "choices_a_string": [b'data: {"choices": "abc"}\n\n', _DONE],
    "choices_a_number": [b'data: {"choices": 5}\n\n', _DONE],
    "choices_of_numbers": [b'data: {"choices": [1, 2]}\n\n', _DONE],
    "delta_a_string": [b'data: {"choices": [{"index": 0, "delta": "x"}]}\n\n', _DONE],
    "invalid_utf8": [b'data: {"choices": [{"index": 0, "delta": {"content": "\xff\xfe"}}]}\n\n', _DONE],
    "error_a_string": [_CONTENT, b'data: {"error": "boom"}\n\n', _DONE],
    "error_a_number": [b'data: {"error": 5}\n\n'],
    "no_terminator": [_CONTENT, _CONTENT],
    "done_without_finish": [_CONTENT, _DONE],
    "unterminated_event": [_CONTENT, b'data: {"choices": []'],
    "empty": [],
}


BIG_CONTENT = "x" * 300_000
WHOLE_STREAMS: dict[str, list[bytes]] = {  # odd but valid: relayed as they are
    "big_chunk": [b'data: {"choices": [{"index": 0, "delta": {"content": "' + BIG_CONTENT.encode() + b'"}, '
                  b'"finish_reason": "stop"}]}\n\n', _DONE],
    "comments_and_fields": [b": keep-alive\n\nevent: message\nid: 1\nretry: 5\n" + _CONTENT, _FINISH, _DONE],
    "crlf_lines": [(_CONTENT + _FINISH).replace(b"\n", b"\r\n"), _DONE],
    "split_across_writes": [_CONTENT[:7], _CONTENT[7:40], _CONTENT[40:], _FINISH[:30], _FINISH[30:], b"data: [DO",
                            b"NE]\n\n"],
}


_USAGE = b'"usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}'
BROKEN_ANSWERS: dict[str, tuple[int, bytes]] = {  # non-streaming answers: (status, body)
    "answer_not_json": (200, b"this is { not json"),
    "answer_invalid_utf8": (200, b'{"choices": [{"index": 0, "message": {"content": "\xff"}}], ' + _USAGE + b"}"),
    "answer_usage_a_string": (200, b'{"choices": [], "usage": "lots"}'),
    "answer_json_array": (200, b"[1, 2]"),
    "answer_empty": (200, b""),
    "error_invalid_utf8": (400, b'{"error": {"message": "\xff\xfe", "code": 400}}'),
    "error_html": (400, b"<html><body>Bad Request</body></html>"),
    "error_a_list": (422, b'[{"loc": ["body"], "msg": "field required"}]'),
}


_OLLAMA_LINE = b'{"model": "m", "message": {"role": "assistant", "content": "hi"}, '
BROKEN_NDJSON: dict[str, list[bytes]] = {  # Ollama streams (`/api/chat`)
    "nd_not_json": [_OLLAMA_LINE + b'"done": false}\n', b"this is { not json\n"],
    "nd_invalid_utf8": [_OLLAMA_LINE.replace(b'"hi"', b'"\xff\xfe"') + b'"done": false}\n'],
    "nd_an_array": [b"[1, 2]\n"],
    "nd_wrong_types": [b'{"model": "m", "message": {"role": "assistant", "content": 5}, "done": "no"}\n'],
    "nd_error_a_number": [_OLLAMA_LINE + b'"done": false}\n', b'{"error": 5}\n'],
}


def scripted_catalog(url: str) -> str:
    """Each script a model of its own name: the SSE ones and answers on a vLLM worker, the NDJSON ones on an
    Ollama worker (both `url`)."""
    sse = [*BROKEN_STREAMS, *WHOLE_STREAMS, *BROKEN_ANSWERS]
    lines = ["models:", *[f"  - name: {m}" for m in [*sse, *BROKEN_NDJSON]], f"routing: {{default_model: {sse[0]}}}",
             "workers:"]
    for name, kind, base, models in (("scripted-vllm", "vllm", url + "/v1", sse),
                                     ("scripted-ollama", "ollama", url, list(BROKEN_NDJSON))):
        lines += [f"  - name: {name}", f"    kind: {kind}", f"    base_url: {base}",
                  "    timeouts: {connect: 2, first_byte: 10, idle: 5, total: 60}", "    models:",
                  *[f"      - {m}" for m in models]]
    return "\n".join(lines) + "\n"


def scripted_answer(raw: bytes) -> Answer:
    """The answer or the stream named by the request's model (its upstream id), whatever was asked."""
    model = json.loads(raw)["model"]
    if model in BROKEN_NDJSON:
        return 200, [(b"content-type", b"application/x-ndjson")], BROKEN_NDJSON[model]
    if model in BROKEN_ANSWERS:
        status, answer = BROKEN_ANSWERS[model]
        return status, [(b"content-type", b"application/json")], [answer]
    script = BROKEN_STREAMS[model] if model in BROKEN_STREAMS else WHOLE_STREAMS[model]
    return 200, [(b"content-type", b"text/event-stream")], script


@pytest.fixture(scope="module")
def scripted_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    coaching = tmp_path_factory.mktemp("scripted") / "coaching.yaml"
    coaching.write_text("context_types:\n" + "".join(f"  {name}: {{system_prompt: x, model: {name}}}\n"
                                                    for name in [*BROKEN_STREAMS, *BROKEN_NDJSON]))
    with ServerThread(answering_worker(scripted_answer)) as worker, start_gateway(
            scripted_catalog(worker.url), GATEWAY_COACHING_CONFIG=str(coaching)) as gateway:
        yield gateway


def sse_payloads(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize("script", sorted([*BROKEN_STREAMS, *BROKEN_NDJSON]))
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/api/coaching/chat"])
def test_a_malformed_worker_stream_ends_with_an_error_event_and_done(scripted_gateway: ServerThread, script: str,
                                                                     route: str) -> None:
    body: dict[str, Any] = {"model": script, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if route == "/api/coaching/chat":
        body = {"context_type": script, "messages": body["messages"], "stream": True, "session_id": "s-" + script}
    with httpx.stream("POST", scripted_gateway.url + route, json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        events = sse_payloads(response)
    assert events[-1] == "[DONE]", events[-3:]
    error = json.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert all(isinstance(json.loads(event), dict) for event in events[:-1])  # all JSON the client can read


@pytest.mark.parametrize("script", sorted(WHOLE_STREAMS))
def test_odd_but_valid_worker_streams_are_relayed_whole(scripted_gateway: ServerThread, script: str) -> None:
    body = {"model": script, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", scripted_gateway.url + "/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        events = sse_payloads(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert not any("error" in chunk for chunk in chunks)
    text = "".join(c["delta"].get("content") or "" for chunk in chunks for c in chunk["choices"])
    assert text == (BIG_CONTENT if script == "big_chunk" else "hi")


NOT_AN_ANSWER = {"answer_not_json", "answer_json_array", "answer_empty"}
"""200s whose body is no JSON object: a worker failure (502), never passed on (or cached) as a success."""


@pytest.mark.parametrize("script", sorted(BROKEN_ANSWERS))
def test_a_malformed_worker_answer_is_never_a_gateway_failure(scripted_gateway: ServerThread, script: str) -> None:
    response = httpx.post(scripted_gateway.url + "/v1/chat/completions", timeout=30,
                          json={"model": script, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code != 500, response.text
    if script in NOT_AN_ANSWER:
        assert openai_error(response, 502)["code"] == "invalid_upstream_answer"
    elif response.status_code >= 400:
        error = openai_error(response, BROKEN_ANSWERS[script][0])
        assert error["code"] != "internal_error"
