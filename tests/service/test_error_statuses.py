"""Every error a client sees is the OpenAI error object with the right status and x-request-id."""

from __future__ import annotations

import httpx
import openai
import pytest

from testkit.loopback import free_port
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def assert_openai_error(response: httpx.Response, status: int, *, param: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["code"] is None or isinstance(error["code"], str)
    assert "Traceback" not in response.text
    if param is not None:
        assert error["param"] == param
    return dict(error)


def test_invalid_json_is_400(gateway: ServerThread) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert_openai_error(response, 400)
    assert_openai_error(httpx.post(gateway.url + "/v1/chat/completions", json=[1, 2]), 400)


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "chat"}, "messages"),
    ({"model": "chat", "messages": []}, "messages"),
    ({"model": "chat", "messages": ["hi"]}, "messages[0]"),
    ({"model": "chat", "messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"model": 3, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": "chat", "stream": "yes", "messages": [{"role": "user", "content": "hi"}]}, "stream"),
])
def test_schema_errors_name_the_param(gateway: ServerThread, body: dict[str, object], param: str) -> None:
    assert_openai_error(httpx.post(gateway.url + "/v1/chat/completions", json=body), 400, param=param)


def test_completions_and_embeddings_check_their_fields(gateway: ServerThread) -> None:
    assert_openai_error(httpx.post(gateway.url + "/v1/completions", json={"model": "chat"}), 400, param="prompt")
    assert_openai_error(httpx.post(gateway.url + "/v1/embeddings", json={"model": "chat"}), 400, param="input")


def test_unknown_model_is_404(gateway: ServerThread) -> None:
    error = assert_openai_error(httpx.post(gateway.url + "/v1/chat/completions",
                                           json={**CHAT, "model": "gpt-9"}), 404, param="model")
    assert error["code"] == "model_not_found"


def test_unknown_route_404_and_wrong_method_405(gateway: ServerThread) -> None:
    assert_openai_error(httpx.get(gateway.url + "/v1/nothing-here"), 404)
    assert_openai_error(httpx.get(gateway.url + "/v1/chat/completions"), 405)
    assert_openai_error(httpx.delete(gateway.url + "/v1/models"), 405)


def test_oversize_body_is_413(vllm_sim: object) -> None:
    with start_gateway(catalog_yaml([("w", "http://127.0.0.1:9")]), GATEWAY_MAX_BODY_BYTES="1024") as gw:
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4096}]}
        assert_openai_error(httpx.post(gw.url + "/v1/chat/completions", json=big), 413)


def test_unreachable_worker_is_502() -> None:
    with start_gateway(catalog_yaml([("gone", f"http://127.0.0.1:{free_port()}")])) as gw:
        error = assert_openai_error(httpx.post(gw.url + "/v1/chat/completions", json=CHAT), 502)
        assert error["code"] == "worker_unreachable"
        stream = assert_openai_error(httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "stream": True}),
                                     502)
        assert stream["code"] == "worker_unreachable"


def test_model_without_worker_is_503() -> None:
    text = "models: [{name: chat}, {name: orphan}]\nrouting: {default_model: chat}\n"
    with start_gateway(text) as gw:
        error = assert_openai_error(httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "model": "orphan"}),
                                    503)
        assert error["code"] == "no_worker_available"


def test_worker_that_never_answers_is_504(gateway: ServerThread) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", json={**CHAT, "model": "never-answer"}, timeout=20)
    assert assert_openai_error(response, 504)["code"] == "upstream_timeout"


@pytest.mark.parametrize(("model", "status", "error_type"), [
    ("error-500", 500, "server_error"),
    ("error-400", 400, "invalid_request_error"),
    ("error-429", 429, "rate_limit_exceeded"),
    ("error-503", 503, "server_error"),
])
def test_worker_errors_are_normalized(gateway: ServerThread, model: str, status: int, error_type: str) -> None:
    for stream in (False, True):
        response = httpx.post(gateway.url + "/v1/chat/completions", json={**CHAT, "model": model, "stream": stream})
        error = assert_openai_error(response, status)
        assert error["type"] == error_type  # vLLM's class-like names and integer codes become OpenAI's


def test_sdk_raises_its_own_exception_classes(gateway: ServerThread) -> None:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0) as c:
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.BadRequestError):
            c.chat.completions.create(model="chat", messages=[])
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="error-500", messages=[{"role": "user", "content": "hi"}])
