"""API keys on every route (figure 12): missing, wrong, revoked, expired keys get 401; user keys on
admin routes and keys outside their models get 403; limits answer 429 with OpenAI's headers (Anthropic's on
`/v1/messages`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam

from gateway.app.server import serve
from gateway.cli.entry import main
from gateway.settings import load_settings
from simulator import SimulatorThread
from testkit.figures import record_figure
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread

ADMIN = "sk-gw-admin-secret-for-tests"
USER = "sk-gw-user-secret-for-tests"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
ROUTES = [("POST", "/v1/chat/completions", CHAT), ("POST", "/v1/completions", {"model": "chat", "prompt": "x"}),
          ("POST", "/v1/embeddings", {"model": "chat", "input": "x"}), ("GET", "/v1/models", None),
          ("GET", "/v1/models/chat", None), ("POST", "/v1/routing/explain", CHAT), ("GET", "/v1/usage", None),
          ("POST", "/admin/reload", None), ("GET", "/admin/workers", None), ("GET", "/admin/keys", None),
          ("POST", "/admin/keys", {}), ("DELETE", "/admin/keys/key_x", None), ("GET", "/admin/keys/key_x/usage", None)]
ADMIN_ROUTES = [r for r in ROUTES if r[1].startswith("/admin")]


@pytest.fixture(scope="module")
def keyed(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    with start_gateway(catalog_yaml([("w", vllm_sim.url)]), GATEWAY_ADMIN_KEY=ADMIN, LLM_API_KEY=USER) as gw:
        yield gw


def call(gw: ServerThread, method: str, path: str, body: object, **headers: str) -> httpx.Response:
    return httpx.request(method, gw.url + path, json=body, headers=headers, timeout=10)


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def create_key(gw: ServerThread, **spec: object) -> dict[str, object]:
    response = call(gw, "POST", "/admin/keys", spec, **bearer(ADMIN))
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.request.url, response.text)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return str(error["code"])


def record_statuses(measure: str, responses: list[httpx.Response], expected: int) -> None:
    statuses = sorted({r.status_code for r in responses})
    record_figure(12, measure, "/".join(map(str, statuses)), threshold=str(expected), met=statuses == [expected])


@pytest.mark.figure(12)
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_refuses_missing_and_wrong_keys(keyed: ServerThread, method: str, path: str,
                                                    body: object) -> None:
    missing = call(keyed, method, path, body)
    wrong = call(keyed, method, path, body, **bearer("sk-gw-wrong"))
    wrong_header = call(keyed, method, path, body, **{"x-api-key": "nope"})
    record_statuses("every route, with a missing or wrong key", [missing, wrong, wrong_header], 401)
    assert assert_error(missing, 401) == "missing_api_key"
    assert assert_error(wrong, 401) == "invalid_api_key"
    assert assert_error(wrong_header, 401) == "invalid_api_key"


@pytest.mark.figure(12)
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_user_keys_cannot_use_admin_routes(keyed: ServerThread, method: str, path: str, body: object) -> None:
    response = call(keyed, method, path, body, **bearer(USER))
    record_statuses("admin routes, with a user key", [response], 403)
    assert assert_error(response, 403) == "admin_required"


def test_keys_are_accepted_in_each_header(keyed: ServerThread) -> None:
    for headers in (bearer(USER), {"x-api-key": USER}, {"api-key": USER}):
        assert call(keyed, "POST", "/v1/chat/completions", CHAT, **headers).status_code == 200


def test_the_openai_sdk_sends_its_key_as_bearer(keyed: ServerThread) -> None:
    with openai.OpenAI(base_url=keyed.url + "/v1", api_key=USER, max_retries=0) as client:
        assert client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}]).choices
    with (openai.OpenAI(base_url=keyed.url + "/v1", api_key="wrong", max_retries=0) as wrong,
          pytest.raises(openai.AuthenticationError)):
        wrong.models.list()


@pytest.mark.figure(12)
def test_created_key_works_is_listed_without_secrets_and_revoked(keyed: ServerThread) -> None:
    created = create_key(keyed, metadata={"owner": "tests"})
    secret = str(created["secret"])
    assert secret.startswith("sk-gw-") and created["prefix"] == secret[:10]
    assert call(keyed, "GET", "/v1/models", None, **bearer(secret)).status_code == 200
    listing = call(keyed, "GET", "/admin/keys", None, **bearer(ADMIN))
    exposed = secret in listing.text or "secret_hash" in listing.text
    record_figure(12, "key listing shows the secret or its hash", "yes" if exposed else "no", threshold="no",
                  met=not exposed)
    assert str(created["id"]) in listing.text and secret not in listing.text and "secret_hash" not in listing.text
    assert call(keyed, "DELETE", f"/admin/keys/{created['id']}", None, **bearer(ADMIN)).json()["revoked"]
    deadline = time.monotonic() + 5
    while (after_revoke := call(keyed, "GET", "/v1/models", None, **bearer(secret))).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still worked after 5 s"
    record_statuses("a revoked key", [after_revoke], 401)
    assert_error(call(keyed, "DELETE", f"/admin/keys/{created['id']}", None, **bearer(ADMIN)), 404)


@pytest.mark.figure(12)
def test_expired_keys_are_refused(keyed: ServerThread) -> None:
    created = create_key(keyed, expires_at=time.time() - 1)
    response = call(keyed, "GET", "/v1/models", None, **bearer(str(created["secret"])))
    record_statuses("an expired key", [response], 401)
    assert assert_error(response, 401) in ("expired_api_key", "invalid_api_key")


def test_keys_are_limited_to_their_models(keyed: ServerThread) -> None:
    secret = str(create_key(keyed, models=["qu*"])["secret"])
    assert assert_error(call(keyed, "POST", "/v1/chat/completions", CHAT, **bearer(secret)), 403) \
        == "model_not_allowed"
    assert call(keyed, "POST", "/v1/chat/completions", {**CHAT, "model": "quick"}, **bearer(secret)).status_code == 200
    models = call(keyed, "GET", "/v1/models", None, **bearer(secret)).json()["data"]
    assert [m["id"] for m in models] == ["quick"]
    assert_error(call(keyed, "GET", "/v1/models/chat", None, **bearer(secret)), 404)


def test_requests_per_minute_answer_429_with_openai_headers(keyed: ServerThread) -> None:
    limited = str(create_key(keyed, limits={"requests_per_minute": 3, "tokens_per_minute": 100_000})["secret"])
    ok = [call(keyed, "POST", "/v1/chat/completions", CHAT, **bearer(limited)) for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert ok[0].headers["x-ratelimit-limit-requests"] == "3"
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["2", "1", "0"]
    assert ok[0].headers["x-ratelimit-limit-tokens"] == "100000"
    refused = call(keyed, "POST", "/v1/chat/completions", CHAT, **bearer(limited))
    assert assert_error(refused, 429) == "rate_limit_requests"
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    assert 55 <= int(refused.headers["retry-after"]) <= 60
    assert int(refused.headers["retry-after-ms"]) > 50_000
    # Another key is not affected.
    assert call(keyed, "POST", "/v1/chat/completions", CHAT, **bearer(USER)).status_code == 200
    usage = call(keyed, "GET", "/v1/usage", None, **bearer(limited)).json()
    assert usage["limits"]["requests_per_minute"] == 3 and usage["remaining"]["requests"] == 0


def test_messages_answer_with_anthropics_rate_limit_headers_and_chat_with_openais(keyed: ServerThread) -> None:
    limited = str(create_key(keyed, limits={"requests_per_minute": 2, "tokens_per_minute": 100_000})["secret"])
    hello: list[MessageParam] = [{"role": "user", "content": "hi"}]
    with anthropic.Anthropic(base_url=keyed.url, api_key=limited, max_retries=0) as claude:
        began = datetime.now(UTC).replace(microsecond=0)
        raw = claude.messages.with_raw_response.create(model="chat", max_tokens=4, messages=hello)
        headers = raw.headers
        assert (headers["anthropic-ratelimit-requests-limit"], headers["anthropic-ratelimit-requests-remaining"]) \
            == ("2", "1")
        assert headers["anthropic-ratelimit-tokens-limit"] == "100000"
        assert 0 < int(headers["anthropic-ratelimit-tokens-remaining"]) < 100_000
        for kind in ("requests", "tokens"):  # RFC 3339, within the minute
            reset = datetime.fromisoformat(headers[f"anthropic-ratelimit-{kind}-reset"])
            assert headers[f"anthropic-ratelimit-{kind}-reset"].endswith("Z")
            assert began <= reset <= began + timedelta(seconds=61)
        assert not [name for name in headers if name.startswith("x-ratelimit-")]
        chat = call(keyed, "POST", "/v1/chat/completions", CHAT, **bearer(limited))
        assert chat.headers["x-ratelimit-remaining-requests"] == "0"
        assert not [name for name in chat.headers if name.startswith("anthropic-")]
        with pytest.raises(anthropic.RateLimitError) as refused:
            claude.messages.create(model="chat", max_tokens=4, messages=hello)
    assert refused.value.body == {"type": "error", "error": {
        "type": "rate_limit_error", "message": "Rate limit reached for requests per minute."}}
    headers = refused.value.response.headers
    assert headers["anthropic-ratelimit-requests-remaining"] == "0" and 55 <= int(headers["retry-after"]) <= 60
    assert not [name for name in headers if name.startswith("x-ratelimit-")]


def test_keys_cli_against_a_running_gateway(keyed: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--url", keyed.url, "--admin-key", ADMIN]
    assert main(["keys", "create", "--models", "chat", "--rpm", "10", "--team", "coach", *common]) == 0
    created = capsys.readouterr().out
    assert '"secret": "sk-gw-' in created and '"team": "coach"' in created
    assert main(["keys", "list", *common]) == 0
    assert '"requests_per_minute": 10' in capsys.readouterr().out
    assert main(["keys", "revoke", "key_nope", *common]) == 1
    assert main(["keys", "list", "--url", keyed.url, "--admin-key", "wrong"]) == 1


def test_refuses_to_listen_beyond_loopback_without_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve(load_settings({"GATEWAY_HOST": "0.0.0.0"}), start_local_workers=False) == 2
    assert "LLM_API_KEY" in capsys.readouterr().err
