"""The routing benchmark's workloads: the same seed gives the same requests, conversations grow turn by
turn, the burst comes where it should with prefixes never seen before, and each ceiling says what a
perfect prefix cache could give (nothing for unrelated prompts, little for decode-bound replies)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from benchmarks.routing import ceiling
from benchmarks.routing.fleet_settings import FleetSettings
from benchmarks.routing.workloads import (
    WORKLOADS,
    BurstSpec,
    ConversationSpec,
    Workload,
    WorkloadSpec,
    build,
    burst,
    conversations,
    mixed,
)
from simulator.text import count_tokens, serialize_messages

SPEC = WorkloadSpec()
FLEET = FleetSettings()


@pytest.mark.parametrize("kind", WORKLOADS)
def test_a_workload_is_the_same_for_the_same_seed_and_has_its_count(kind: str) -> None:
    first, again = build(kind, 120, SPEC), build(kind, 120, SPEC)
    other = build(kind, 120, dataclasses.replace(SPEC, seed=SPEC.seed + 1))
    assert first == again and len(first) == 120
    assert first.ordered() != other.ordered()


@pytest.mark.parametrize("kind", WORKLOADS)
def test_every_prompt_fits_the_simulators_context_with_its_reply(kind: str) -> None:
    workload = build(kind, 200, SPEC)
    longest = max(count_tokens(serialize_messages(r.messages)) for r in workload.ordered())
    assert longest + workload.max_tokens <= 8192  # the simulator's max_model_len, as vLLM's default here


def test_skewed_sends_its_share_to_the_hot_group_and_uniform_spreads_evenly() -> None:
    skewed = build("skewed", 400, SPEC).ordered()
    assert sum(r.group == SPEC.hot_group for r in skewed) == 200
    counts: dict[int, int] = {}
    for request in build("uniform", 640, SPEC).ordered():
        counts[request.group] = counts.get(request.group, 0) + 1
    assert set(counts.values()) == {10} and len(counts) == SPEC.groups


def test_a_conversation_turn_repeats_the_last_one_then_its_answer_and_a_new_question() -> None:
    workload = conversations(300, seed=5, with_user=True)
    spec = ConversationSpec()
    assert all(len(s) <= spec.turns[1] for s in workload.sessions)
    assert all(len(s) >= spec.turns[0] for s in workload.sessions[:-1])  # the last one may be cut short
    for number, turns in enumerate(workload.sessions):
        assert {r.group for r in turns} == {number} and {r.user for r in turns} == {f"user-{number}"}
        assert turns[0].messages[0]["role"] == "system" and turns[0].messages[1]["role"] == "user"
        for previous, turn in itertools.pairwise(turns):
            assert turn.messages[: len(previous.messages)] == previous.messages
            assert [m["role"] for m in turn.messages[len(previous.messages):]] == ["assistant", "user"]
            assert len(serialize_messages(turn.messages)) > len(serialize_messages(previous.messages))


def test_anonymous_conversations_are_the_same_requests_without_a_user() -> None:
    named, anonymous = conversations(100, seed=5, with_user=True), conversations(100, seed=5, with_user=False)
    assert [[r.messages for r in s] for s in named.sessions] == [[r.messages for r in s] for s in anonymous.sessions]
    assert {r.user for r in anonymous.ordered()} == {None}
    assert (named.kind, anonymous.kind) == ("conversations", "conversations-anonymous")


def test_conversations_are_sent_one_turn_after_the_other_in_order() -> None:
    workload = conversations(60, seed=5, with_user=False)
    events = list(workload.events())
    assert [what for what, _ in events] == ["session"] * len(workload.sessions)
    numbers = [number for _, numbered in events for number, _ in numbered]
    assert numbers == list(range(60))
    for (_, numbered), session in zip(events, workload.sessions, strict=True):
        assert [request for _, request in numbered] == session


def test_mixed_has_its_share_of_long_prompts_and_no_shared_prefix() -> None:
    workload = mixed(200, seed=5)
    tokens = [count_tokens(serialize_messages(r.messages)) for r in workload.ordered()]
    assert sum(t >= 2_000 for t in tokens) == 40 and all(t <= 320 for t in tokens if t < 2_000)
    assert ceiling.ceiling(workload, FLEET, 48)["max_hit_rate"] == 0.0


def test_the_burst_is_sent_once_its_share_of_the_steady_requests_started() -> None:
    workload = burst(500, SPEC, BurstSpec(burst_share=0.2, at=0.5))
    assert len(workload.burst) == 100 and len(workload.sessions) == 400 and workload.burst_after == 200
    events = list(workload.events())
    assert [what for what, _ in events].index("burst") == 200
    assert {r.phase for r in workload.burst} == {"burst"}
    assert {r.phase for s in workload.sessions for r in s} == {"steady"}
    known = {r.group for s in workload.sessions for r in s}
    assert len(known) == BurstSpec().known_groups and not known & {r.group for r in workload.burst}
    seen_before = {r.messages[0]["content"] for s in workload.sessions for r in s}
    assert not {r.messages[0]["content"] for r in workload.burst} & seen_before
    assert workload.ordered()[200:300] == workload.burst


def test_a_workloads_ceiling_follows_what_its_prompts_share() -> None:
    uniform = ceiling.ceiling(build("uniform", 640, SPEC), FLEET, 48)
    long_outputs = ceiling.ceiling(build("long-outputs", 640, SPEC), FLEET, 48)
    chat = ceiling.ceiling(build("conversations", 300, SPEC), FLEET, 48)
    assert 0.8 < uniform["max_hit_rate"] < 0.95 and uniform["throughput"] > 3  # every group's first request misses
    assert uniform["decode_share"] < 0.5 < long_outputs["decode_share"] and long_outputs["throughput"] < 1.2
    assert long_outputs["tokens_per_s"] > uniform["tokens_per_s"]  # more tokens per request, same batches
    assert chat["throughput"] > 2 and uniform["tokens_per_s"] > uniform["tokens_per_s_no_cache"]


def test_a_later_turn_can_reuse_every_full_block_of_the_turn_before() -> None:
    workload = conversations(40, seed=5, with_user=False)
    prompts = list(ceiling.prompts(workload, FLEET.block_tokens))
    turns = workload.sessions[0]
    block_chars = FLEET.block_tokens * 4
    assert prompts[0].reusable == 0
    for index in range(1, len(turns)):
        before = len(serialize_messages(turns[index - 1].messages))
        assert prompts[index].reusable == before // block_chars * FLEET.block_tokens


def test_an_empty_workload_has_no_ceiling() -> None:
    assert ceiling.ceiling(Workload("none", "nothing", []), FLEET, 48) == {}
