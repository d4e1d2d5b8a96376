"""Figure 2: 100 streams through a gateway process; the worker serving a third of them is killed, or
freezes, mid-stream (a fault proxy between the gateway and each simulated worker).

Asserted: its clients get an OpenAI error event then `[DONE]`, what they got before it is a prefix of
the worker's real answer (no silent truncation, no duplicated tokens), and every other stream is whole.
Recorded: how long after the fault the error events came (≤ 2 s killed, ≤ idle timeout + 10 % frozen).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import SimulatorConfig, SimulatorThread
from testkit.figures import record_figure
from tests.conftest import SIM_MODEL, catalog_yaml
from tests.fault_proxy import FaultProxy
from tests.reliability.sse_client import StreamSeen, read_stream
from tests.servers import gateway_processes

STREAMS = 100
REPLY_TOKENS = 40
IDLE_S = 2.0
KILLED_BOUND_S = 2.0
FROZEN_BOUND_S = IDLE_S * 1.1
VICTIM = "w1"
ERROR_FIELDS = {"message", "type", "param", "code"}

Fleet = list[tuple[SimulatorThread, FaultProxy]]


def chat(i: int) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": f"stream number {i}, tell me more"}],
            "max_tokens": 64}


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """Three simulated workers (40 tokens at 0.1 s each), each behind a fault proxy."""
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), itl_s=0.1, reply_tokens=(REPLY_TOKENS, REPLY_TOKENS))
    with ExitStack() as stack:
        sims = [stack.enter_context(SimulatorThread(config)) for _ in range(3)]
        yield [(sim, stack.enter_context(FaultProxy(sim.port))) for sim in sims]


@pytest.fixture
def gateway_url(fleet: Fleet, tmp_path: Path) -> Iterator[str]:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(catalog_yaml([(f"w{i}", proxy.url) for i, (_sim, proxy) in enumerate(fleet)], idle=IDLE_S,
                                    first_byte=10.0))
    with gateway_processes(catalog, {}) as started:
        yield started[0][0]


def expected_answers() -> list[str]:
    """What each stream's worker really answers: the same simulator (same seed), without pacing."""
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), reply_tokens=(REPLY_TOKENS, REPLY_TOKENS))
    with SimulatorThread(config) as reference, httpx.Client(timeout=30) as client:
        return [str(client.post(reference.url + "/v1/chat/completions", json={**chat(i), "model": SIM_MODEL})
                    .json()["choices"][0]["message"]["content"]) for i in range(STREAMS)]


async def streams_with_a_fault(url: str, fault: Callable[[], object]) -> tuple[list[StreamSeen], float]:
    """Start every stream, apply `fault` once each has its first token, read them all to their end;
    the streams and when the fault was applied."""
    started = asyncio.Semaphore(0)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=STREAMS)) as client:
        tasks = [asyncio.create_task(read_stream(client, url, chat(i), started.release)) for i in range(STREAMS)]
        async with asyncio.timeout(60):
            for _ in range(STREAMS):
                await started.acquire()
        fault_at = time.monotonic()
        await asyncio.to_thread(fault)
        return list(await asyncio.gather(*tasks)), fault_at


def check_streams(seen: list[StreamSeen], fault_at: float, *, how: str, bound_s: float) -> None:
    """Record the figure, then assert the outcomes (a failed outcome is recorded as missed first)."""
    expected = expected_answers()
    cut = [i for i, s in enumerate(seen) if s.worker == VICTIM and not s.completed]
    whole = [i for i in range(STREAMS) if i not in cut]
    honest = [i for i in cut if seen[i].ended_with_error_then_done and expected[i].startswith(seen[i].text)
              and set(seen[i].error or {}) == ERROR_FIELDS]
    intact = [i for i in whole if seen[i].completed and seen[i].text == expected[i]]
    delays = [at - fault_at for i in cut if (at := seen[i].error_at) is not None]
    worst = max(delays, default=float("nan"))
    threshold = f"≤ {bound_s:g} s"
    record_figure(2, f"{how}: error event after the fault (worst stream)", round(worst, 3),
                  unit="s", threshold=threshold, met=bool(delays) and worst <= bound_s)
    record_figure(2, f"{how}: cut streams ending with an error event then [DONE], a prefix of the answer",
                  f"{len(honest)}/{len(cut)}", threshold="all, and at least one", met=0 < len(honest) == len(cut))
    record_figure(2, f"{how}: other streams complete and exact", f"{len(intact)}/{len(whole)}", threshold="all",
                  met=len(intact) == len(whole))

    assert all(s.status == 200 for s in seen), {s.status for s in seen}
    assert cut, f"no stream was still open on {VICTIM} when it was {how}"
    for i in cut:
        s = seen[i]
        assert s.ended_with_error_then_done, (i, s)
        assert set(s.error or {}) == ERROR_FIELDS, s.error
        assert expected[i].startswith(s.text), (s.text, expected[i])  # nothing lost in the middle or repeated
        assert s.finish_reason is None or s.text == expected[i]  # never a made-up finish
    for i in whole:
        assert seen[i].completed, (i, seen[i])
        assert seen[i].text == expected[i]


@pytest.mark.figure(2)
def test_a_killed_worker_ends_its_streams_with_an_error_event(fleet: Fleet, gateway_url: str) -> None:
    victim = fleet[int(VICTIM[1:])][1]
    seen, fault_at = asyncio.run(streams_with_a_fault(gateway_url, victim.kill))
    check_streams(seen, fault_at, how="killed", bound_s=KILLED_BOUND_S)


@pytest.mark.figure(2)
def test_a_frozen_worker_ends_its_streams_at_the_idle_timeout(fleet: Fleet, gateway_url: str) -> None:
    victim = fleet[int(VICTIM[1:])][1]
    seen, fault_at = asyncio.run(streams_with_a_fault(gateway_url, victim.stall))
    check_streams(seen, fault_at, how="frozen", bound_s=FROZEN_BOUND_S)
