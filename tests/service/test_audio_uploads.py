"""Audio transcriptions and translations (`gateway.surfaces.audio`, `gateway.http.routes.audio`) with the
official openai SDK, through a real gateway to the simulated vLLM: the upload reaches the worker whole
(the simulator counts the audio's bytes) and while the client is still sending it, `model` rewritten to
the worker's id; the answer comes back in the format asked for, streamed or not; the refusals (no
worker of the model serves audio, no `model`, too large, a key not allowed the model) are OpenAI's errors.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest
import structlog

from simulator import SimulatorThread
from tests.conftest import SIM_MODEL, start_gateway
from tests.servers import ServerThread

ADMIN = "sk-gw-admin-secret-for-audio"
MAX_BYTES = 3 * 1024 * 1024
CATALOG = """
models: [{{name: whisper}}, {{name: chat}}, {{name: pulled}}]
routing: {{default_model: chat}}
workers:
  - {{name: vllm-a, kind: vllm, base_url: "{url}/v1",
     models: [{{name: whisper, upstream_id: {sim}}}, {{name: chat, upstream_id: {sim}}}]}}
  - {{name: ollama-a, kind: ollama, base_url: "http://127.0.0.1:9", models: [pulled]}}
"""


@pytest.fixture(scope="module")
def gateway(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    catalog = CATALOG.format(url=vllm_sim.url, sim=SIM_MODEL)
    with start_gateway(catalog, GATEWAY_ADMIN_KEY=ADMIN, GATEWAY_AUDIO_MAX_BYTES=str(MAX_BYTES),
                       LOG_LEVEL="info") as server:
        yield server


@pytest.fixture
def client(gateway: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=ADMIN, max_retries=0)


def audio(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + b"\x00" * (size % 256)


def test_a_transcription_reaches_the_worker_whole_under_its_own_model_id(client: openai.OpenAI,
                                                                          sim: SimulatorThread) -> None:
    size = 2 * 1024 * 1024 + 123
    raw = client.audio.transcriptions.with_raw_response.create(model="whisper", file=("talk.wav", audio(size)))
    assert raw.parse().text == f"transcribed {size} bytes"
    assert raw.headers["x-gateway-model"] == "whisper" and raw.headers["x-gateway-worker"] == "vllm-a"
    [record] = [r for r in sim.records if r.path == "/v1/audio/transcriptions"]
    assert record.upload_bytes == size
    assert record.body is not None and record.body["model"] == SIM_MODEL


def test_translations_and_response_formats(client: openai.OpenAI, gateway: ServerThread) -> None:
    text = client.audio.transcriptions.create(model="whisper", file=("a.wav", audio(1000)), response_format="text")
    assert text.strip() == "transcribed 1000 bytes"
    verbose = client.audio.transcriptions.create(model="whisper", file=("a.wav", audio(10)),
                                                 response_format="verbose_json", language="de")
    assert verbose.text == "transcribed 10 bytes" and verbose.language == "de" and verbose.segments
    # (the SDK's `audio.translations` is deprecated: a warning, an error under this suite)
    translated = httpx.post(gateway.url + "/v1/audio/translations", data={"model": "whisper"},
                            files={"file": ("a.wav", audio(77))}, headers={"authorization": f"Bearer {ADMIN}"})
    assert translated.json() == {"text": "transcribed 77 bytes"}


def test_a_streamed_transcription_comes_as_openais_events(client: openai.OpenAI) -> None:
    events = list(client.audio.transcriptions.create(model="whisper", file=("a.wav", audio(4096)), stream=True))
    assert {e.type for e in events[:-1]} == {"transcript.text.delta"}
    assert events[-1].type == "transcript.text.done" and events[-1].text == "transcribed 4096 bytes"
    assert "".join(e.delta for e in events[:-1] if e.type == "transcript.text.delta") == events[-1].text


def test_a_model_whose_workers_do_not_serve_audio_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="pulled", file=("a.wav", audio(100)))
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "model" and error["code"] == "unsupported_by_model"
    assert "Audio transcriptions" in error["message"] and "ollama" in error["message"]


def test_a_form_without_model_is_a_400_on_model(gateway: ServerThread) -> None:
    refused = httpx.post(gateway.url + "/v1/audio/transcriptions", files={"file": ("a.wav", audio(5000))},
                         headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "model"


def test_model_after_the_file_is_found_within_the_lookahead(gateway: ServerThread, sim: SimulatorThread) -> None:
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + audio(3000) + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n"
        f"--{boundary}--\r\n").encode()
    answer = httpx.post(gateway.url + "/v1/audio/transcriptions", content=body, timeout=10,
                        headers={"authorization": f"Bearer {ADMIN}",
                                 "content-type": f"multipart/form-data; boundary={boundary}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "transcribed 3000 bytes"
    [record] = [r for r in sim.records if r.path == "/v1/audio/transcriptions"]
    assert record.body is not None and record.body["model"] == SIM_MODEL


@pytest.mark.parametrize("size", [MAX_BYTES + 1, 10 * MAX_BYTES])
def test_an_upload_over_the_limit_is_a_413(client: openai.OpenAI, size: int) -> None:
    """The SDK says the size (`content-length`): refused before a byte is read, and the client, still
    writing, reads the refusal."""
    with pytest.raises(openai.APIStatusError) as refused:
        client.audio.transcriptions.create(model="whisper", file=("a.wav", audio(size)))
    assert refused.value.status_code == 413
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "payload_too_large"


def test_an_upload_that_grows_over_the_limit_while_streaming_is_a_413(gateway: ServerThread,
                                                                       sim: SimulatorThread) -> None:
    """Sent without a length: refused once the limit is passed, while the worker was already getting it."""
    boundary = "gr0wing"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(2 * MAX_BYTES // (256 * 1024)):
            yield audio(256 * 1024)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(timeout=20) as http:
            return await http.post(gateway.url + "/v1/audio/transcriptions", content=body(),
                                   headers={"authorization": f"Bearer {ADMIN}",
                                            "content-type": f"multipart/form-data; boundary={boundary}"})

    refused = asyncio.run(send())
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "payload_too_large"
    assert [r.path for r in sim.records] == ["/v1/audio/transcriptions"]  # it had begun to reach the worker


def test_a_key_not_allowed_the_model_is_a_403(gateway: ServerThread) -> None:
    created = httpx.post(gateway.url + "/admin/keys", json={"models": ["chat"]},
                         headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert created.status_code == 201, created.text
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=created.json()["secret"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.audio.transcriptions.create(model="whisper", file=("a.wav", audio(100)))
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "model_not_allowed"


def test_the_worker_gets_the_body_before_the_client_has_sent_it_all(gateway: ServerThread,
                                                                     sim: SimulatorThread) -> None:
    boundary = "sl0wly"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    pieces, piece = 8, audio(64 * 1024)
    finished_sending: list[float] = []

    async def slowly() -> AsyncIterator[bytes]:
        yield head
        for _ in range(pieces):
            await asyncio.sleep(0.1)
            yield piece
        yield f"\r\n--{boundary}--\r\n".encode()
        finished_sending.append(time.monotonic())

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(timeout=20) as http:
            return await http.post(gateway.url + "/v1/audio/transcriptions", content=slowly(),
                                   headers={"authorization": f"Bearer {ADMIN}",
                                            "content-type": f"multipart/form-data; boundary={boundary}"})

    answer = asyncio.run(send())
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == f"transcribed {pieces * len(piece)} bytes"
    [record] = [r for r in sim.records if r.path == "/v1/audio/transcriptions"]
    assert record.body_first_at is not None and record.body_end_at is not None
    assert record.body_first_at < finished_sending[0] - 0.5  # the worker had the head while the rest was coming


def test_audio_requests_are_counted_and_logged_under_their_surface(gateway: ServerThread,
                                                                    client: openai.OpenAI) -> None:
    with structlog.testing.capture_logs() as logs:
        client.audio.transcriptions.create(model="whisper", file=("a.wav", audio(10)),
                                           extra_headers={"x-request-id": "audio-log-1"})
        deadline = time.monotonic() + 5
        while not any(e.get("request_id") == "audio-log-1" for e in logs):
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
    [line] = [e for e in logs if e.get("request_id") == "audio-log-1"]
    assert line["endpoint"] == "audio/transcriptions" and line["model"] == "whisper" and line["status"] == 200
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'endpoint="audio/transcriptions"' in metrics


RETRY_CATALOG = """
models:
  - {{name: whisper, policy: round_robin}}
  - {{name: faulty, policy: round_robin}}
routing: {{default_model: whisper}}
workers:
  - {{name: dead, kind: vllm, base_url: "http://127.0.0.1:9/v1", models: [whisper]}}
  - {{name: failing, kind: vllm, base_url: "{url}/v1", models: [{{name: faulty, upstream_id: error-500}}]}}
  - {{name: sim, kind: vllm, base_url: "{url}/v1",
     models: [{{name: whisper, upstream_id: {sim}}}, {{name: faulty, upstream_id: {sim}}}]}}
"""


@pytest.fixture(scope="module")
def retrying(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    with start_gateway(RETRY_CATALOG.format(url=vllm_sim.url, sim=SIM_MODEL)) as server:
        yield server


def test_a_try_that_sent_nothing_of_the_clients_body_is_retried_on_another_worker(retrying: ServerThread,
                                                                                   sim: SimulatorThread) -> None:
    """The first worker refuses the connection: the gateway still holds the head, the next worker gets the
    whole upload."""
    client = openai.OpenAI(base_url=retrying.url + "/v1", api_key="unused", max_retries=0)
    size = 1024 * 1024
    answers = [client.audio.transcriptions.with_raw_response.create(model="whisper", file=("a.wav", audio(size)))
               for _ in range(2)]  # round robin: one of them tries `dead` first
    assert [a.parse().text for a in answers] == [f"transcribed {size} bytes"] * 2
    assert "2" in [a.headers.get("x-gateway-attempts") for a in answers]
    assert [r.upload_bytes for r in sim.records] == [size, size]


def test_a_worker_failing_after_reading_the_body_is_not_retried(retrying: ServerThread, sim: SimulatorThread) -> None:
    """`failing` reads the whole upload, then answers 500: the body is spent, so that is the answer."""
    size = 1024 * 1024
    statuses = [httpx.post(retrying.url + "/v1/audio/transcriptions", data={"model": "faulty"},
                           files={"file": ("a.wav", audio(size))}, timeout=10).status_code for _ in range(2)]
    assert sorted(statuses) == [200, 500]
    assert [r.upload_bytes for r in sim.records] == [size, size]  # two requests, two tries: none retried


def test_a_workers_4xx_reaches_the_client_as_that_4xx(client: openai.OpenAI) -> None:
    """The SDK sends `response_format` after `model`: the gateway does not read it, the worker refuses it."""
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="whisper", file=("a.wav", audio(10)),
                                           response_format="mp3")  # type: ignore[call-overload]
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "response_format"


def test_an_empty_model_takes_the_catalogs_default(gateway: ServerThread) -> None:
    answer = httpx.post(gateway.url + "/v1/audio/transcriptions", data={"model": ""},
                        files={"file": ("a.wav", audio(10))}, headers={"authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-gateway-route"] == "default" and answer.headers["x-gateway-model"] == "chat"


def test_a_client_leaving_mid_upload_breaks_off_the_workers_request(gateway: ServerThread,
                                                                     sim: SimulatorThread) -> None:
    boundary = "l3aving"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as raw:
        raw.sendall((f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {ADMIN}\r\n"
                     f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n"
                     ).encode() + head + audio(100_000))
        assert sim.wait_for(lambda records: any(r.body_first_at is not None for r in records))
    assert sim.wait_for(lambda records: all(r.disconnected is not None for r in records))
    assert all(r.upload_bytes is None for r in sim.records)  # the worker never got a whole form
