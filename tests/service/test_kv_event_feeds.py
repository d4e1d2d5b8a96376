"""Precise prefix affinity against real simulators publishing their KV events over ZMQ on loopback: the
gateway's subscriber indexes what a worker stores and evicts, and three gateways sharing one fleet send a
prompt to the worker that holds its prefix though another gateway sent it there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import httpx
import pytest

from gateway.workers.active_catalog import ActiveCatalog, CatalogHolder
from gateway.workers.kv_feeds import KvEventFeeds, feed_address
from routing.catalog import WorkerSpec, parse_catalog
from routing.kv_index import block_keys
from routing.prompt_tokens import SimulatorTokens
from routing.snapshot import RequestKey
from simulator import SimulatorConfig, SimulatorThread
from simulator.server import start_simulator
from tests.conftest import start_gateway
from tests.servers import ServerThread

STEP_MODEL = {"max_num_batched_tokens": 512, "kv_blocks": 256, "max_model_len": 4096,
              "kv_events_endpoint": "tcp://127.0.0.1:*"}


def catalog(endpoints: list[tuple[str, str, str]], policy: str = "prefix_affinity_precise") -> str:
    """Model `chat` served by each (name, url, kv-events endpoint) worker, with `policy`."""
    lines = ["models:", "  - name: chat", f"    policy: {policy}", "routing: {default_model: chat}",
             "health: {interval: 0.2}", "workers:"]
    for name, url, endpoint in endpoints:
        lines += [f"  - name: {name}", "    kind: vllm", f"    base_url: {url}/v1",
                  "    models: [{name: chat, upstream_id: sim-model}]",
                  f"    kv_events: {{endpoint: '{endpoint}', tokenizer: simulator}}"]
    return "\n".join(lines) + "\n"


def chat(system: str, question: str) -> dict[str, object]:
    return {"model": "chat", "max_tokens": 4,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}]}


def test_a_star_host_is_the_workers_own() -> None:
    spec = parse_catalog(catalog([("w", "http://10.1.2.3:8000", "tcp://*:5557")])).workers[0]
    assert feed_address(spec) is not None and feed_address(spec).endpoint == "tcp://10.1.2.3:5557"  # type: ignore[union-attr]
    assert feed_address(WorkerSpec(name="x", kind="vllm", models=("chat",), base_url="http://h/v1")) is None


async def test_the_subscriber_indexes_what_the_simulator_stores_and_evicts() -> None:
    async with start_simulator(SimulatorConfig(**STEP_MODEL)) as sim:  # type: ignore[arg-type]
        assert sim.kv_events_endpoint is not None
        runtimes = CatalogHolder(ActiveCatalog.build(parse_catalog(catalog([("w", sim.url,
                                                                              sim.kv_events_endpoint)])), {}), {})
        feeds = KvEventFeeds(runtimes)
        await feeds.start()
        index = runtimes.current.pool.kv_index
        body = chat("You are a patient coach who helps people build habits that last. " * 6, "Plan my week")
        keys = block_keys(SimulatorTokens().token_ids(RequestKey("chat", body=body)) or [], 16)
        try:
            assert feeds.subscribed() == {"w": sim.kv_events_endpoint}
            async with httpx.AsyncClient(base_url=sim.url, timeout=5) as client:
                for attempt in range(50):  # a ZMQ subscription takes a moment to reach the publisher
                    warm_up = chat(f"warm-up {attempt} " * 8, "?")
                    await client.post("/v1/chat/completions", json={**warm_up, "model": "sim-model"})
                    if index.reports("w"):
                        break
                    await asyncio.sleep(0.05)
                await client.post("/v1/chat/completions", json={**body, "model": "sim-model"})
            await _until(lambda: index.matched("w", keys) == len(keys))
            assert len(keys) == 6 and index.held("w") > 6
            sim.reset()  # the simulator forgets its cached blocks: BlockRemoved
            await _until(lambda: index.held("w") == 0)
        finally:
            await feeds.stop()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(250):  # 5 s
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def fleet() -> Iterator[list[SimulatorThread]]:
    with ExitStack() as stack:
        yield [stack.enter_context(SimulatorThread(SimulatorConfig(seed=i, **STEP_MODEL)))  # type: ignore[arg-type]
               for i in range(3)]


def test_three_gateways_share_what_each_worker_holds(fleet: list[SimulatorThread]) -> None:
    text = catalog([(f"w{i}", s.url, s.simulator.kv_events_endpoint or "") for i, s in enumerate(fleet)])
    with ExitStack() as stack:
        gateways = [stack.enter_context(start_gateway(text, background=True)) for _ in range(3)]
        _until_every_gateway_hears_every_worker(gateways, fleet)
        systems = [f"Group {g}: you answer questions about invoices for team {g}. " * 8 for g in range(3)]
        first = [_worker_of(gateways[0], chat(system, "first question")) for system in systems]
        _until_gateways_agree(gateways)
        # Other orders than the first gateway's: taking turns among equals would not give `first` back.
        for via, order in ((gateways[1], [2, 1, 0]), (gateways[2], [1, 2, 0])):
            chosen = [_worker_of(via, chat(systems[g], f"another question via {via.port}")) for g in order]
            assert chosen == [first[g] for g in order]


def _worker_of(gateway: ServerThread, body: dict[str, object]) -> str:
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-gateway-worker"]


def _kv_blocks(gateway: ServerThread) -> dict[str, int | None]:
    rows = httpx.get(gateway.url + "/admin/workers", timeout=5).json()["workers"]
    return {row["name"]: row["kv_blocks"] for row in rows}


def _until_every_gateway_hears_every_worker(gateways: list[ServerThread], fleet: list[SimulatorThread]) -> None:
    """Warm the subscriptions up: requests straight to the workers until every gateway got their events."""
    deadline = time.monotonic() + 15
    attempt = 0
    while any(None in _kv_blocks(g).values() for g in gateways):
        assert time.monotonic() < deadline, [_kv_blocks(g) for g in gateways]
        attempt += 1
        for sim in fleet:
            httpx.post(sim.url + "/v1/chat/completions", timeout=5,
                       json={"model": "sim-model", "max_tokens": 1,
                             "messages": [{"role": "user", "content": f"warm-up {attempt} " * 20}]})
        wait_until = time.monotonic() + 0.1
        while time.monotonic() < wait_until:
            httpx.get(gateways[0].url + "/livez", timeout=5)


def _until_gateways_agree(gateways: list[ServerThread]) -> None:
    """Every gateway's index holds as many blocks per worker as the others (their events all arrived)."""
    deadline = time.monotonic() + 10
    while len({tuple(sorted(_kv_blocks(g).items())) for g in gateways}) != 1:
        assert time.monotonic() < deadline, [_kv_blocks(g) for g in gateways]
