"""Stored responses across replicas: two `llm-gateway serve` processes sharing one Redis; a response
created on one is continued on the other (the worker gets the whole conversation), read by its team
only, and a streamed one is kept once complete."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from simulator import SimulatorThread
from tests.conftest import SIM_MODEL, catalog_yaml
from tests.servers import gateway_processes

ADMIN = "sk-gw-admin-for-responses-replica-tests"


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def create_key(url: str, team: str) -> str:
    response = httpx.post(url + "/admin/keys", json={"metadata": {"team": team}}, headers=bearer(ADMIN), timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


def client(url: str, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)


@pytest.fixture(scope="module")
def replicas(vllm_sim: SimulatorThread, redis_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[list[str]]:
    import redis

    flushing = redis.Redis.from_url(redis_url)
    flushing.flushdb()
    flushing.close()
    catalog = tmp_path_factory.mktemp("responses") / "models.yaml"
    native = (f"  - name: n\n    kind: vllm\n    base_url: {vllm_sim.url}/v1\n"
              f"    models:\n      - {{name: native, upstream_id: {SIM_MODEL}}}\n")
    text = catalog_yaml([("w", vllm_sim.url)], kind="openai", extra_models=("native",))
    text = text.replace("      - {name: native, upstream_id: native}\n", "")  # `native`: only worker n's
    catalog.write_text(text.replace("workers:\n", "workers:\n" + native, 1))
    env = {"REDIS_URL": redis_url, "GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_REDIS_TIMEOUT": "10"}
    with gateway_processes(catalog, env, count=2, ready_path="/v1/models", ready_headers=bearer(ADMIN)) as started:
        yield [url for url, _process in started]


def test_a_response_is_continued_on_another_replica(replicas: list[str], sim: SimulatorThread) -> None:
    one, two = replicas
    alpha = create_key(one, "alpha")
    with client(one, alpha) as first_gateway, client(two, alpha) as second_gateway:
        first = first_gateway.responses.create(model="chat", input="Remember the number 7", instructions="Be terse")
        second = second_gateway.responses.create(model="chat", input="Which number?", previous_response_id=first.id)
        assert second.previous_response_id == first.id
        [*_, last] = [r.body for r in sim.records if r.path == "/v1/chat/completions"]
        assert last is not None and last["messages"] == [
            {"role": "user", "content": "Remember the number 7"},
            {"role": "assistant", "content": first.output_text},
            {"role": "user", "content": "Which number?"}]
        with second_gateway.responses.stream(model="chat", input="Again", previous_response_id=second.id,
                                             max_output_tokens=200) as stream:
            streamed = stream.get_final_response()
        assert first_gateway.responses.retrieve(streamed.id).output_text == streamed.output_text


def test_a_native_response_is_continued_on_another_replica(replicas: list[str], sim: SimulatorThread) -> None:
    """The same chain with a worker that serves Responses itself: it gets the whole conversation as input
    items and `store: false`, whichever replica sends it."""
    one, two = replicas
    alpha = create_key(one, "alpha")
    with client(one, alpha) as first_gateway, client(two, alpha) as second_gateway:
        first = first_gateway.responses.create(model="native", input="Remember the number 7")
        with second_gateway.responses.stream(model="native", input="Which number?", previous_response_id=first.id,
                                             max_output_tokens=200) as stream:
            second = stream.get_final_response()
        assert second.model == "native" and second.previous_response_id == first.id
        [*_, last] = [r.body for r in sim.records if r.path == "/v1/responses"]
        assert last is not None and last["store"] is False and "previous_response_id" not in last
        assert last["input"] == [{"type": "message", "role": "user", "content": "Remember the number 7"},
                                 {"type": "message", "role": "assistant", "content": first.output_text},
                                 {"role": "user", "content": "Which number?"}]
        assert first_gateway.responses.retrieve(second.id).output_text == second.output_text


def test_another_team_never_reads_continues_or_deletes_it(replicas: list[str]) -> None:
    one, two = replicas
    alpha, alpha_too, beta = create_key(one, "alpha"), create_key(two, "alpha"), create_key(two, "beta")
    with client(one, alpha) as owner, client(two, alpha_too) as teammate, client(two, beta) as other:
        kept = owner.responses.create(model="chat", input="Team secret")
        assert teammate.responses.retrieve(kept.id).id == kept.id  # the team shares its responses
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(kept.id)
        with pytest.raises(openai.NotFoundError) as refused:
            other.responses.create(model="chat", input="Tell me", previous_response_id=kept.id)
        assert refused.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(kept.id)
        assert owner.responses.retrieve(kept.id).id == kept.id  # still there
