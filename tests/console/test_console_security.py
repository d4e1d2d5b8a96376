"""The console's locks, checked over plain HTTP where a browser cannot be made to misbehave: off without
an admin key, every change refused without the same origin and the session's CSRF token, a cookie
issued by one replica accepted by another (same keys, same GATEWAY_CONSOLE_SECRET) and by no other
secret, security headers on every page, and each change in the log with the admin key's id."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.console.conftest import ADMIN_KEY, USER_KEY
from tests.servers import ServerThread


@contextmanager
def signed_in(url: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding an admin session cookie, and the session's CSRF token."""
    with httpx.Client(base_url=url, timeout=10) as client:
        answer = client.post("/console/signin", data={"key": ADMIN_KEY}, headers={"origin": url})
        assert answer.status_code == 303, answer.text
        yield client, client.get("/console/api/session").json()["csrf"]


def test_the_console_is_off_without_an_admin_key(vllm_sim: SimulatorThread) -> None:
    text = catalog_yaml([("sim-a", vllm_sim.url)])
    envs: list[dict[str, str]] = [{}, {"LLM_API_KEY": USER_KEY}]
    for env in envs:
        with start_gateway(text, background=False, **env) as gw:
            for path in ("/console", "/console/signin", "/console/static/console.js", "/console/api/keys"):
                assert httpx.get(gw.url + path).status_code == 404, (env, path)


def test_changes_need_the_same_origin_and_the_csrf_token(console_gateway: ServerThread) -> None:
    url = console_gateway.url
    with signed_in(url) as (client, csrf):
        body = {"limits": {"requests_per_minute": 5}}
        refused = [
            {"origin": url},  # no CSRF token
            {"origin": url, "x-csrf-token": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")},  # a wrong one
            {"x-csrf-token": csrf},  # no Origin
            {"origin": "http://evil.test", "x-csrf-token": csrf},
            {"origin": url, "x-csrf-token": csrf, "sec-fetch-site": "cross-site"},
            {"origin": url, "x-csrf-token": csrf, "sec-fetch-site": "same-site"},
        ]
        for headers in refused:
            assert client.post("/console/api/keys", json=body, headers=headers).status_code == 403, headers
        assert client.get("/console/api/keys").json()["data"] == []
        created = client.post("/console/api/keys", json=body, headers={"origin": url, "x-csrf-token": csrf,
                                                                        "sec-fetch-site": "same-origin"})
        assert created.status_code == 201, created.text
        key_id = created.json()["id"]
        changed = client.patch(f"/console/api/keys/{key_id}", json={"models": ["quick"]},
                               headers={"origin": url, "x-csrf-token": csrf})
        assert changed.json()["models"] == ["quick"] and changed.json()["limits"]["requests_per_minute"] == 5
        assert client.delete(f"/console/api/keys/{key_id}", headers={"origin": url}).status_code == 403
        revoked = client.delete(f"/console/api/keys/{key_id}", headers={"origin": url, "x-csrf-token": csrf})
        assert revoked.status_code == 200


def test_sign_in_is_refused_cross_site_and_for_wrong_or_user_keys(console_gateway: ServerThread) -> None:
    url = console_gateway.url
    assert httpx.post(url + "/console/signin", data={"key": ADMIN_KEY}).status_code == 403
    assert httpx.post(url + "/console/signin", data={"key": ADMIN_KEY},
                      headers={"origin": "http://evil.test"}).status_code == 403
    assert httpx.post(url + "/console/signin", data={"key": "sk-gw-nope"}, headers={"origin": url}).status_code == 401
    user = httpx.post(url + "/console/signin", data={"key": USER_KEY}, headers={"origin": url})
    assert user.status_code == 403 and "set-cookie" not in user.headers


def test_the_cookie_is_strict_and_the_pages_carry_a_strict_policy(console_gateway: ServerThread) -> None:
    url = console_gateway.url
    answer = httpx.post(url + "/console/signin", data={"key": ADMIN_KEY}, headers={"origin": url})
    cookie = answer.headers["set-cookie"].lower()
    for part in ("httponly", "samesite=strict", "path=/console", "max-age="):
        assert part in cookie
    assert ADMIN_KEY.lower() not in cookie
    for path in ("/console/signin", "/console/static/console.js"):
        headers = httpx.get(url + path).headers
        assert headers["content-security-policy"].startswith("default-src 'self'")
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
    with signed_in(url) as (client, csrf):
        out = client.post("/console/signout", data={"csrf": csrf}, headers={"origin": url})
        assert out.status_code == 303 and "max-age=0" in out.headers["set-cookie"].lower()
        assert client.get("/console/api/keys").status_code == 401


@pytest.mark.parametrize(("other_secret", "accepted"), [("shared-secret", True), ("another-secret", False)])
def test_a_session_from_one_replica_is_valid_on_another_with_the_same_secret(
        vllm_sim: SimulatorThread, other_secret: str, accepted: bool) -> None:
    text = catalog_yaml([("sim-a", vllm_sim.url)])
    with start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN_KEY, GATEWAY_CONSOLE_SECRET="shared-secret") as one, \
            start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN_KEY, GATEWAY_CONSOLE_SECRET=other_secret) as two, \
            signed_in(one.url) as (client, _):
        answer = httpx.get(two.url + "/console/api/keys", cookies={"gw_console": client.cookies["gw_console"]})
        assert answer.status_code == (200 if accepted else 401)


def test_each_change_is_logged_with_the_admin_key_id(console_gateway: ServerThread) -> None:
    url = console_gateway.url
    with signed_in(url) as (client, csrf):
        with capture_logs() as logs:
            client.post("/console/api/workers/sim-a/drain", headers={"origin": url, "x-csrf-token": csrf})
            client.post("/console/api/workers/sim-a/resume", headers={"origin": url, "x-csrf-token": csrf})
        actions = [(e["action"], e["key_id"], e["target"]) for e in logs if e["event"] == "console_action"]
        assert actions == [("worker_drain", "key_admin", "sim-a"), ("worker_resume", "key_admin", "sim-a")]


def test_the_catalog_reloads_and_its_route_cases_are_read_from_the_console(vllm_sim: SimulatorThread,
                                                                          tmp_path: Path) -> None:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([("sim-a", vllm_sim.url)]))
    cases = "cases:\n  - {request: {messages: [{role: user, content: hi}]}, expect: chat}\n"
    (tmp_path / "route_cases.yaml").write_text(cases)
    with start_gateway(catalog.read_text(), source=str(catalog), GATEWAY_ADMIN_KEY=ADMIN_KEY) as gw, \
            signed_in(gw.url) as (client, csrf):
        assert client.get("/console/api/route-cases").json() == {"path": str(tmp_path / "route_cases.yaml"),
                                                                 "text": cases}
        catalog.write_text(catalog_yaml([("sim-a", vllm_sim.url)], extra_models=("coach",)))
        reloaded = client.post("/console/api/reload", headers={"origin": gw.url, "x-csrf-token": csrf})
        assert reloaded.status_code == 200, reloaded.text
        assert "coach" in reloaded.json()["models"]
        catalog.write_text("models: [")
        refused = client.post("/console/api/reload", headers={"origin": gw.url, "x-csrf-token": csrf})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_catalog"
