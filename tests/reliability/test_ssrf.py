"""Figure 14: a client cannot make the gateway call an address it was not configured with, and the
client's key never reaches a worker.

A trap listener on a free loopback port counts every connection made to it; requests name it in every
way a client might (upstream fields in the body, a URL as the model, proxy-style headers, the Host
header, an absolute request target, admin routes with a user key), and a worker that redirects to it
is not followed. The trap must see no connection at all.

The decision (docs/operations.md, "Security"): the gateway only ever calls the workers of its catalog.
Body fields it does not use (`api_base`, `base_url`, `extra_body`, ...) are vendor fields, forwarded to
the catalog's worker unchanged like `tools` or `logprobs` (the worker ignores what it does not know);
a `model` that is not a catalog model or alias is 404 `model_not_found`; headers are never forwarded."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorThread
from testkit.figures import record_figure
from tests.conftest import SIM_MODEL, catalog_yaml, start_gateway
from tests.reliability.asgi_workers import answering_worker
from tests.servers import ServerThread

pytestmark = pytest.mark.figure(14)
CLIENT_KEY = "sk-gw-client-key-for-ssrf-tests-0123"
ADMIN_KEY = "sk-gw-admin-key-for-ssrf-tests-0123"
WORKER_KEY = "worker-own-key-for-ssrf-tests-0123"
MESSAGES = [{"role": "user", "content": "hi"}]


class Trap:
    """A TCP listener on a free loopback port that accepts and counts every connection."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="ssrf-trap")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def __enter__(self) -> Trap:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture(scope="module")
def trap() -> Iterator[Trap]:
    with Trap() as listener:
        yield listener


@pytest.fixture(autouse=True)
def no_connection_reaches_the_trap(trap: Trap) -> Iterator[None]:
    before = trap.connections
    yield
    assert trap.connections == before, "the gateway connected to an address that is not in its catalog"


@pytest.fixture(scope="module")
def keyed_sim() -> Iterator[SimulatorThread]:
    """A worker that requires its own key (vLLM `--api-key`)."""
    with SimulatorThread(SimulatorConfig(kind="vllm", models=(SIM_MODEL,), api_key=WORKER_KEY)) as sim:
        yield sim


@pytest.fixture(scope="module")
def gateway(keyed_sim: SimulatorThread) -> Iterator[ServerThread]:
    """A gateway that requires keys, in front of `keyed_sim` (its key from `api_key_env`)."""
    catalog = catalog_yaml([("w", keyed_sim.url)]).replace("    kind: vllm\n",
                                                           "    kind: vllm\n    api_key_env: SSRF_WORKER_KEY\n")
    with start_gateway(catalog, LLM_API_KEY=CLIENT_KEY, GATEWAY_ADMIN_KEY=ADMIN_KEY,
                       SSRF_WORKER_KEY=WORKER_KEY) as server:
        yield server


def client_headers(**extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {CLIENT_KEY}", **extra}


def upstream_fields(url: str) -> list[dict[str, Any]]:
    """Body fields through which other gateways and SDKs name an upstream."""
    return [{"api_base": url}, {"base_url": url}, {"api_key": "sk-attacker", "api_base": url},
            {"extra_body": {"base_url": url, "api_base": url}}, {"url": url}, {"endpoint": url},
            {"custom_llm_provider": "openai", "openai_api_base": url}, {"azure_endpoint": url},
            {"provider": {"base_url": url}}, {"extra_headers": {"x-portkey-custom-host": url}}]


def test_upstream_fields_in_the_body_reach_only_the_catalog_worker(gateway: ServerThread, keyed_sim: SimulatorThread,
                                                                   trap: Trap) -> None:
    sent = 0
    for fields in upstream_fields(trap.url):
        for stream in (False, True):
            keyed_sim.reset()
            response = httpx.post(gateway.url + "/v1/chat/completions", headers=client_headers(), timeout=20,
                                  json={"model": "chat", "messages": MESSAGES, "stream": stream, **fields})
            sent += 1
            assert response.status_code == 200, response.text
            (record,) = keyed_sim.records
            assert record.body is not None
            assert {name: record.body[name] for name in fields} == fields  # forwarded as vendor fields
    record_figure(14, "requests naming an upstream in their body (answered by the catalog's worker)", sent,
                  threshold="0 outbound calls elsewhere", met=trap.connections == 0, unit="requests")


def url_models(trap: Trap) -> list[str]:
    return [trap.url + "/v1", trap.url, f"127.0.0.1:{trap.port}", f"//127.0.0.1:{trap.port}/v1",
            f"openai/{trap.url}/v1", f"{trap.url}/v1/chat/completions", f"http://localhost:{trap.port}/v1",
            f"http://[::1]:{trap.port}/v1"]


def test_a_url_as_the_model_is_404(gateway: ServerThread, keyed_sim: SimulatorThread, trap: Trap) -> None:
    keyed_sim.reset()
    inference: list[tuple[str, dict[str, Any]]] = [
        ("/v1/chat/completions", {"messages": MESSAGES}), ("/v1/completions", {"prompt": "hi"}),
        ("/v1/embeddings", {"input": "hi"}), ("/api/chat/completions", {"messages": MESSAGES}),
        ("/v1/routing/explain", {"messages": MESSAGES})]
    refused = 0
    for model in url_models(trap):
        for path, body in inference:
            response = httpx.post(gateway.url + path, json={**body, "model": model}, headers=client_headers(),
                                  timeout=20)
            assert response.status_code == 404, (path, model, response.text)
            assert response.json()["error"]["code"] == "model_not_found"
            refused += 1
        response = httpx.get(gateway.url + "/v1/models/" + model, headers=client_headers(), timeout=20)
        assert response.status_code == 404
    assert keyed_sim.records == []
    record_figure(14, "requests with a URL as the model (404, no outbound call)", refused,
                  threshold="0 outbound calls", met=trap.connections == 0, unit="requests")


def test_upstream_headers_and_the_host_header_are_ignored(gateway: ServerThread, keyed_sim: SimulatorThread,
                                                          trap: Trap) -> None:
    target = f"127.0.0.1:{trap.port}"
    tricks = [{"x-portkey-custom-host": trap.url + "/v1"}, {"x-portkey-provider": "openai"},
              {"x-portkey-config": json.dumps({"custom_host": trap.url})}, {"x-forwarded-host": target},
              {"forwarded": f"host={target};proto=http"}, {"x-original-url": trap.url + "/v1/chat/completions"},
              {"x-rewrite-url": trap.url}, {"x-api-base": trap.url}, {"x-base-url": trap.url},
              {"x-upstream": trap.url}, {"host": target}]
    for trick in tricks:
        keyed_sim.reset()
        response = httpx.post(gateway.url + "/v1/chat/completions", headers=client_headers(**trick), timeout=20,
                              json={"model": "chat", "messages": MESSAGES})
        assert response.status_code == 200, (trick, response.text)
        (record,) = keyed_sim.records
        assert not set(trick) & set(record.headers) - {"host"}  # no client header reaches the worker
        assert record.headers["host"] == f"127.0.0.1:{keyed_sim.port}"


def test_an_absolute_request_target_is_served_locally(gateway: ServerThread, trap: Trap) -> None:
    body = json.dumps({"model": "chat", "messages": MESSAGES}).encode()
    request = (f"POST {trap.url}/v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{trap.port}\r\n"
               f"authorization: Bearer {CLIENT_KEY}\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=20) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status == 200 or 400 <= status < 500, answer[:300]


def test_a_user_key_cannot_add_or_reach_workers(gateway: ServerThread, trap: Trap) -> None:
    worker = {"name": "evil", "kind": "vllm", "base_url": trap.url + "/v1", "models": ["chat"]}
    for method, path, body in [("POST", "/admin/workers", worker),
                               ("POST", "/admin/workers/w/adapters", {"lora_name": "a", "lora_path": trap.url}),
                               ("POST", "/admin/workers/w/models/pull", {"model": trap.url})]:
        response = httpx.request(method, gateway.url + path, json=body, headers=client_headers(), timeout=20)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "admin_required"


def test_a_worker_redirect_is_not_followed(trap: Trap) -> None:
    location = (trap.url + "/v1/chat/completions").encode()
    worker = answering_worker(lambda _body: (307, [(b"location", location)], []))
    with ServerThread(worker) as redirecting, start_gateway(catalog_yaml([("w", redirecting.url)])) as gw:
        response = httpx.post(gw.url + "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES},
                              timeout=20)
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "upstream_redirect"
    record_figure(14, "worker redirects followed", trap.connections, threshold="0", met=trap.connections == 0)


def test_the_client_key_never_reaches_the_worker(gateway: ServerThread, keyed_sim: SimulatorThread) -> None:
    keyed_sim.reset()
    presented = [{"authorization": f"Bearer {CLIENT_KEY}"}, {"x-api-key": CLIENT_KEY}, {"api-key": CLIENT_KEY},
                 {"authorization": f"Bearer {ADMIN_KEY}"}]
    for headers in presented:
        for stream in (False, True):
            response = httpx.post(gateway.url + "/v1/chat/completions", headers=headers, timeout=20,
                                  json={"model": "chat", "messages": MESSAGES, "stream": stream})
            assert response.status_code == 200, response.text
        response = httpx.post(gateway.url + "/api/chat/completions", headers=headers, timeout=20,
                              json={"model": "chat", "messages": MESSAGES})
        assert response.status_code == 200, response.text
    records = keyed_sim.records
    assert len(records) == 3 * len(presented)
    assert all(r.headers.get("authorization") == f"Bearer {WORKER_KEY}" for r in records)
    leaked = [r for r in records if CLIENT_KEY in str(r.headers) or ADMIN_KEY in str(r.headers)
              or "x-api-key" in r.headers or "api-key" in r.headers]
    assert leaked == []
    record_figure(14, "worker requests carrying a client's key", len(leaked), threshold="0", met=not leaked,
                  unit="requests")
