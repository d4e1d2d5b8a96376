"""Usage per key and day across replicas: two `llm-gateway serve` processes on one Redis; a key used with
the openai SDK on both (plain, streamed, refused) shows, on either replica, every request and the tokens
the SDK was told, once each replica's counts are flushed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest

from simulator import SimulatorThread
from tests.conftest import catalog_yaml
from tests.servers import gateway_processes

ADMIN = "sk-gw-admin-for-usage-tests"


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def replicas(vllm_sim: SimulatorThread, redis_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[list[str]]:
    catalog = tmp_path_factory.mktemp("usage") / "models.yaml"
    catalog.write_text(catalog_yaml([("w", vllm_sim.url)]))
    env = {"REDIS_URL": redis_url, "GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_REDIS_TIMEOUT": "10",
           "GATEWAY_USAGE_FLUSH_SECONDS": "0.2"}
    with gateway_processes(catalog, env, count=2, ready_path="/v1/models", ready_headers=bearer(ADMIN)) as started:
        yield [url for url, _process in started]


def usage(url: str, key_id: str, days: str = "") -> httpx.Response:
    query = f"?days={days}" if days else ""
    return httpx.get(f"{url}/admin/keys/{key_id}/usage{query}", headers=bearer(ADMIN), timeout=10)


def today_once_flushed(url: str, key_id: str, requests: int) -> dict[str, Any]:
    """Today's row on `url` once it counts `requests` (the other replica's arrive within its flush)."""
    deadline, pause = time.monotonic() + 30, threading.Event()
    while True:
        response = usage(url, key_id)
        assert response.status_code == 200, response.text
        row: dict[str, Any] = response.json()["data"][-1]
        if row["requests"] >= requests or time.monotonic() > deadline:
            return row
        pause.wait(0.1)


def test_a_keys_use_on_two_replicas_is_summed_per_day(replicas: list[str]) -> None:
    one, two = replicas
    created = httpx.post(one + "/admin/keys", json={"models": ["chat"]}, headers=bearer(ADMIN), timeout=10)
    assert created.status_code == 201, created.text
    key_id, secret = created.json()["id"], created.json()["secret"]
    prompt = completion = 0
    for url in (one, two, two):
        with openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0) as client:
            answer = client.chat.completions.create(model="chat", max_tokens=8,
                                                    messages=[{"role": "user", "content": "Give me a tip"}])
            assert answer.usage is not None
            prompt, completion = prompt + answer.usage.prompt_tokens, completion + answer.usage.completion_tokens
    with openai.OpenAI(base_url=one + "/v1", api_key=secret, max_retries=0) as client:
        chunks = list(client.chat.completions.create(model="chat", max_tokens=8, stream=True,
                                                     stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "Another tip"}]))
        [counted] = [chunk.usage for chunk in chunks if chunk.usage is not None]
        prompt, completion = prompt + counted.prompt_tokens, completion + counted.completion_tokens
        with pytest.raises(openai.PermissionDeniedError):  # a model the key may not use: an error
            client.chat.completions.create(model="quick", max_tokens=8, messages=[{"role": "user", "content": "x"}])

    for url in (one, two):
        row = today_once_flushed(url, key_id, 5)
        assert row["day"] == datetime.now(UTC).date().isoformat()
        assert (row["requests"], row["prompt_tokens"], row["completion_tokens"], row["errors"]) == (
            5, prompt, completion, 1)
        assert row["models"]["chat"] == {"requests": 4, "prompt_tokens": prompt, "completion_tokens": completion,
                                         "errors": 0}
    whole = usage(one, key_id, days="3").json()
    assert whole["key_id"] == key_id and whole["days"] == 3 and len(whole["data"]) == 3
    assert [row["requests"] for row in whole["data"][:2]] == [0, 0]


def test_days_must_be_a_number_of_days_kept(replicas: list[str]) -> None:
    for days in ("0", "36", "week"):
        refused = usage(replicas[0], "key_x", days=days)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "days"
    assert len(usage(replicas[0], "key_x").json()["data"]) == 7


def test_the_openapi_schema_documents_the_usage_route(replicas: list[str]) -> None:
    schema = httpx.get(replicas[0] + "/schema/openapi.json", timeout=10).json()
    operation = schema["paths"]["/admin/keys/{key_id}/usage"]["get"]
    assert operation["summary"] == "A key's usage per UTC day"
    assert sorted((p["name"], p["in"], p["required"]) for p in operation["parameters"]) == [
        ("days", "query", False), ("key_id", "path", True)]
