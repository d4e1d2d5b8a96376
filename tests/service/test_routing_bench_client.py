"""The routing benchmark's clients against a real simulated vLLM worker on loopback: a conversation's
turns reach the worker one after the other (a turn only once the last answer ended), with the user id
when the workload has one; a burst reaches it all at once, after the sessions before it started; with
several gateway URLs, requests take them in turn."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from benchmarks.routing.client import OutstandingTracker, run_load
from benchmarks.routing.workloads import BurstSpec, WorkloadSpec, burst, conversations
from simulator import SimulatorConfig, SimulatorThread


@pytest.fixture
def worker() -> Iterator[SimulatorThread]:
    config = SimulatorConfig(kind="vllm", models=("bench",), seed=7, itl_s=0.003, prompt_tokens_details=True)
    with SimulatorThread(config) as sim:
        yield sim


async def test_a_conversations_turns_are_sent_one_after_the_other(worker: SimulatorThread) -> None:
    workload = conversations(30, seed=3, with_user=True)
    outcomes, _ = await run_load([worker.url], workload, 3, OutstandingTracker(), timeout_s=60)
    assert len(outcomes) == 30 and not [o.error for o in outcomes if o.error]
    chats = [r for r in worker.records if r.path == "/v1/chat/completions"]
    for number, session in enumerate(workload.sessions):
        seen = sorted((r for r in chats if r.body and r.body.get("user") == f"user-{number}"), key=lambda r: r.started)
        assert [r.body["messages"] for r in seen if r.body] == [turn.messages for turn in session]
        for previous, turn in itertools.pairwise(seen):
            assert previous.finished is not None and turn.started >= previous.finished
    assert max(o.cached_tokens or 0 for o in outcomes) > 0  # later turns found the earlier ones cached


async def test_a_burst_arrives_at_once_after_the_sessions_before_it(worker: SimulatorThread) -> None:
    workload = burst(40, WorkloadSpec(), BurstSpec(known_groups=2, new_groups=2, burst_share=0.25, at=0.5))
    outcomes, _ = await run_load([worker.url, worker.url], workload, 2, OutstandingTracker(), timeout_s=60)
    assert len(outcomes) == 40 and not [o.error for o in outcomes if o.error]
    by_index = {o.index: o for o in outcomes}
    burst_sent = [by_index[i].sent_at for i in range(workload.burst_after, workload.burst_after + 10)]
    assert {by_index[i].phase for i in range(workload.burst_after, workload.burst_after + 10)} == {"burst"}
    assert max(burst_sent) - min(burst_sent) < 0.25
    before = [by_index[i].sent_at for i in range(workload.burst_after)]
    assert min(burst_sent) >= max(before)
    steady_later = sorted(by_index[i].sent_at for i in range(workload.burst_after + 10, 40))
    assert min(burst_sent) < steady_later[2]  # not held back until the sessions after it ran
