"""The inference POSTs are answered as plain ASGI before litestar (`gateway.http.fast_path`);
requests it does not take (CORS requests, other methods) go through litestar. Both answer alike."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx

from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
ORIGIN = "https://app.upcoach.com"


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def test_cors_requests_take_litestar_and_answer_the_same(vllm_sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("w", vllm_sim.url)]), CORS_ORIGINS=ORIGIN) as gw:
        plain = httpx.post(gw.url + "/v1/chat/completions", json=CHAT)
        cors = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers={"Origin": ORIGIN})
        assert plain.status_code == cors.status_code == 200
        assert cors.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-origin" not in plain.headers
        for name in ("x-gateway-model", "x-gateway-route", "x-gateway-worker", "content-type"):
            assert plain.headers[name] == cors.headers[name]
        assert plain.json()["choices"][0]["message"] == cors.json()["choices"][0]["message"]
        # errors too: same status and error object either way
        bad = b'{"model": "chat", "messages": '
        assert _error(httpx.post(gw.url + "/v1/chat/completions", content=bad), 400) == \
            _error(httpx.post(gw.url + "/v1/chat/completions", content=bad, headers={"Origin": ORIGIN}), 400)


def test_streams_and_errors_on_the_fast_path(gateway: ServerThread) -> None:
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"]
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert _error(httpx.post(gateway.url + "/v1/chat/completions", json={**CHAT, "model": "nope"}), 404)["param"] \
        == "model"
    assert _error(httpx.post(gateway.url + "/v1/embeddings", json={"model": "chat"}), 400)


def test_oversize_bodies_are_refused_by_length_and_by_chunks(vllm_sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("w", vllm_sim.url)]), GATEWAY_MAX_BODY_BYTES="2048") as gw:
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4096}]}
        _error(httpx.post(gw.url + "/v1/chat/completions", json=big), 413)

        def chunks() -> Iterator[bytes]:
            for _ in range(8):
                yield b" " * 1024

        _error(httpx.post(gw.url + "/v1/chat/completions", content=chunks()), 413)


def test_a_client_gone_before_its_body_ends_leaves_the_gateway_serving(gateway: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port)) as raw:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n{\"model\":")
    assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT).status_code == 200
