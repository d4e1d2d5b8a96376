"""Worker policies, each from plain snapshots: who gets the request, and how load spreads."""

from __future__ import annotations

import ast
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from routing.policies import (
    LeastOutstanding,
    PrefixAffinity,
    Residency,
    RoundRobin,
    SessionAffinity,
    WeightedRoundRobin,
    WorkerPolicy,
    block_hashes,
    make_policy,
)
from routing.snapshot import RequestKey, WorkerLoad

ROUTING = Path(__file__).resolve().parents[2] / "routing"
ALLOWED_THIRD_PARTY = {"re2", "msgspec", "yaml", "xxhash"}
REQ = RequestKey(model="chat")
SYSTEM = "system: You are a patient coach who helps people build habits that last. " * 2


def fleet(*names: str, **loads: int) -> list[WorkerLoad]:
    return [WorkerLoad(name=n, in_flight=loads.get(n, 0)) for n in names]


def picks(policy: WorkerPolicy, candidates: Sequence[WorkerLoad], n: int, request: RequestKey = REQ) -> Counter[str]:
    chosen = [policy.choose(request, candidates, 0.0) for _ in range(n)]
    return Counter(c.name for c in chosen if c is not None)


def conversation(*turns: str) -> str:
    return SYSTEM + "".join(f"user: {t}\n" for t in turns)


@pytest.mark.parametrize("name", ["round_robin", "weighted", "least_outstanding", "session_affinity",
                                  "prefix_affinity", "residency"])
def test_every_policy_returns_none_only_without_candidates(name: str) -> None:
    policy = make_policy(name)
    assert policy.choose(REQ, [], 0.0) is None
    assert policy.choose(REQ, [WorkerLoad("a", weight=0)], 0.0) is None  # drained
    assert policy.choose(REQ, fleet("a"), 0.0) == WorkerLoad("a")


def test_make_policy_rejects_unknown_names_and_options() -> None:
    with pytest.raises(ValueError, match=r"least_outstanding.*prefix_affinity"):
        make_policy("random")
    with pytest.raises(ValueError, match="balance"):
        make_policy("least_outstanding", balance_abs=4)
    assert isinstance(make_policy("prefix_affinity", balance_abs=4), PrefixAffinity)


def test_round_robin_takes_turns_whatever_the_order() -> None:
    policy = RoundRobin()
    workers = fleet("a", "b", "c")
    order = [policy.choose(REQ, workers[::-1] if i % 2 else workers, 0.0) for i in range(6)]
    assert [w.name for w in order if w] == ["a", "b", "c", "a", "b", "c"]
    assert picks(policy, workers, 300) == {"a": 100, "b": 100, "c": 100}


def test_weighted_round_robin_is_smooth_and_proportional() -> None:
    policy = WeightedRoundRobin()
    workers = [WorkerLoad("a", weight=5), WorkerLoad("b", weight=1), WorkerLoad("c", weight=1),
               WorkerLoad("off", weight=0)]
    first = [policy.choose(REQ, workers, 0.0) for _ in range(7)]
    assert "".join(w.name for w in first if w) == "aabacaa"  # nginx's interleaving, not aaaaabc
    assert picks(policy, workers, 700) == {"a": 500, "b": 100, "c": 100}


def test_least_outstanding_picks_the_least_loaded_counting_the_scraped_queue() -> None:
    workers = [WorkerLoad("a", in_flight=3), WorkerLoad("b", in_flight=1, waiting=5), WorkerLoad("c", in_flight=2)]
    assert LeastOutstanding().choose(REQ, workers, 0.0) == workers[2]


def test_least_outstanding_spreads_ties_and_prefers_weight() -> None:
    policy = LeastOutstanding()
    assert picks(policy, fleet("a", "b", "c"), 300) == {"a": 100, "b": 100, "c": 100}
    heavy = [WorkerLoad("a"), WorkerLoad("b", weight=3)]
    assert picks(policy, heavy, 10) == {"b": 10}


def test_least_outstanding_spreads_a_burst_as_in_flight_grows() -> None:
    policy = LeastOutstanding()
    load = dict.fromkeys("abcd", 0)
    for _ in range(40):
        chosen = policy.choose(REQ, [WorkerLoad(n, in_flight=k) for n, k in load.items()], 0.0)
        assert chosen is not None
        load[chosen.name] += 1
    assert set(load.values()) == {10}


def test_session_affinity_is_stable_and_spreads_sessions() -> None:
    policy = SessionAffinity()
    workers = fleet("a", "b", "c", "d")
    homes = {}
    for i in range(400):
        request = RequestKey("chat", session=f"user-{i}")
        first = policy.choose(request, workers, 0.0)
        assert first is not None
        assert all(policy.choose(request, workers[::-1], 0.0) == first for _ in range(3))
        homes[i] = first.name
    assert all(60 <= n <= 140 for n in Counter(homes.values()).values())


def test_session_affinity_moves_only_the_sessions_of_a_removed_worker() -> None:
    policy = SessionAffinity()
    workers = fleet("a", "b", "c", "d", "e")
    sessions = [f"s{i}" for i in range(2000)]
    before = {s: policy.pinned(s, workers) for s in sessions}
    after = {s: policy.pinned(s, [w for w in workers if w.name != "c"]) for s in sessions}
    moved = [s for s in sessions if before[s] != after[s]]
    assert all(before[s] == "c" for s in moved)
    assert all(after[s] != "c" for s in sessions)
    assert 0.1 < len(moved) / len(sessions) < 0.3  # about 1/N


def test_session_affinity_falls_back_without_session_or_when_overloaded() -> None:
    policy = SessionAffinity()
    workers = fleet("a", "b", "c")
    request = RequestKey("chat", session="alice")
    home = policy.pinned("alice", workers)
    # Mean in_flight 2 with the pinned worker at 6: 6 > 2 * 2 + 2 is false, so it stays.
    busy = [replace(w, in_flight=6 if w.name == home else 0) for w in workers]
    assert policy.choose(request, busy, 0.0) == next(w for w in busy if w.name == home)
    # At 7 (mean 7/3): 7 > 2 * 7/3 + 2 is true, so it spills to the least loaded.
    busier = [replace(w, in_flight=7 if w.name == home else 0) for w in workers]
    spilled = policy.choose(request, busier, 0.0)
    assert spilled is not None and spilled.name != home
    # No session: least outstanding.
    assert policy.choose(REQ, fleet("a", "b", "c", a=1, c=1), 0.0) == WorkerLoad("b")


def test_block_hashes_chain_full_blocks_of_the_whole_text() -> None:
    text = "x" * 64 * 3 + "tail"
    hashes = block_hashes("chat", text)
    assert len(hashes) == 3  # the partial block is not hashed
    assert len(set(hashes)) == 3  # equal blocks, different positions: the chain tells them apart
    assert block_hashes("chat", text[:128]) == hashes[:2]
    assert block_hashes("other", text)[0] != hashes[0]  # h0 is the model
    assert len(block_hashes("chat", "y" * 64 * 1000)) == 256


def test_prefix_affinity_sends_a_shared_long_prefix_to_the_same_worker() -> None:
    policy = PrefixAffinity()
    workers = fleet("a", "b", "c")
    document = "Here is my weekly journal, read it carefully. " * 40
    first = policy.choose(RequestKey("chat", prompt=document + "user: summarize"), workers, 0.0)
    assert first is not None
    for question in ("what went well?", "what should I change?", "rate my week"):
        # Even with that worker a little busier, the cache wins while the load is balanced.
        busy = [replace(w, in_flight=2 if w.name == first.name else 0) for w in workers]
        assert policy.choose(RequestKey("chat", prompt=document + f"user: {question}"), busy, 0.0) == replace(
            first, in_flight=2)


def test_prefix_affinity_spreads_distinct_prompts_by_load() -> None:
    policy = PrefixAffinity()
    load = dict.fromkeys("abc", 0)
    for i in range(30):
        prompt = f"conversation {i}: " + f"topic {i} " * 40
        chosen = policy.choose(RequestKey("chat", prompt=prompt), [WorkerLoad(n, in_flight=k) for n, k in load.items()],
                               0.0)
        assert chosen is not None
        load[chosen.name] += 1
    assert set(load.values()) == {10}


def test_prefix_affinity_obeys_the_imbalance_rule() -> None:
    prompt = RequestKey("chat", prompt=SYSTEM * 10)

    def warm_on_a() -> PrefixAffinity:
        policy = PrefixAffinity(balance_abs=4)
        assert policy.choose(prompt, fleet("a", "b"), 0.0) == WorkerLoad("a")
        return policy

    # a holds the prefix; 5 - 0 > 4 and 5 > 1.5 * 0: imbalanced, so the least loaded wins.
    assert warm_on_a().choose(prompt, fleet("a", "b", a=5), 0.0) == WorkerLoad("b")
    # 4 - 0 is not > 4: balanced enough, so the cache wins although b is idle.
    assert warm_on_a().choose(prompt, fleet("a", "b", a=4), 0.0) == WorkerLoad("a", in_flight=4)
    # 20 vs 1: imbalanced on both counts.
    assert warm_on_a().choose(prompt, fleet("a", "b", a=20, b=1), 0.0) == WorkerLoad("b", in_flight=1)
    # 20 vs 14: 20 - 14 > 4 but 20 < 1.5 * 14, so not imbalanced: the cache wins.
    assert warm_on_a().choose(prompt, fleet("a", "b", a=20, b=14), 0.0) == WorkerLoad("a", in_flight=20)
    # The default balance_abs (64) tolerates far more before it overrides the cache.
    policy = PrefixAffinity()
    policy.choose(prompt, fleet("a", "b"), 0.0)
    assert policy.choose(prompt, fleet("a", "b", a=60), 0.0) == WorkerLoad("a", in_flight=60)


def test_prefix_affinity_hashes_the_whole_conversation() -> None:
    policy = PrefixAffinity()
    workers = fleet("a", "b")
    alice = conversation(*(f"alice talks about running, day {d}" for d in range(30)))
    bob = conversation(*(f"bob talks about reading, day {d}" for d in range(30)))
    first = policy.choose(RequestKey("chat", prompt=alice), workers, 0.0)
    # Same system prompt, different long history: bob's match on a is tiny, so the tie rotates to b.
    second = policy.choose(RequestKey("chat", prompt=bob), workers, 0.0)
    assert first is not None and second is not None and first.name != second.name
    scores = policy.scores(RequestKey("chat", prompt=bob), workers)
    assert scores[first.name] < policy.match_threshold and scores[second.name] == 1.0
    # Each conversation's next turn returns to its own worker.
    assert policy.choose(RequestKey("chat", prompt=alice + "user: and today?\n"), workers, 0.0) == first
    assert policy.choose(RequestKey("chat", prompt=bob + "user: and today?\n"), workers, 0.0) == second


def test_prefix_affinity_lru_capacity_and_forget() -> None:
    policy = PrefixAffinity()
    policy.capacity("a", 4)
    prompt = RequestKey("chat", prompt="z" * 64 * 10)
    assert policy.choose(prompt, fleet("a"), 0.0) == WorkerLoad("a")
    assert policy.scores(prompt, fleet("a")) == {"a": 0.4}  # the leading 4 blocks were kept
    policy.forget("a")
    assert policy.scores(prompt, fleet("a")) == {"a": 0.0}
    with pytest.raises(ValueError):
        policy.capacity("a", 0)


def test_prefix_affinity_places_a_new_prefix_on_the_worker_caching_the_least() -> None:
    policy = PrefixAffinity()
    policy.choose(RequestKey("chat", prompt="group A. " * 200), fleet("a"), 0.0)  # a caches a long prompt
    # A prefix nobody holds goes to the emptiest cache (SGLang's smallest tree), not the least loaded...
    chosen = policy.choose(RequestKey("chat", prompt="group B. " * 100), fleet("a", "b", b=2), 0.0)
    assert chosen == WorkerLoad("b", in_flight=2)
    # ...and between equally empty caches, to the least loaded.
    chosen = policy.choose(RequestKey("chat", prompt="group C. " * 100), fleet("a", "b", "c", "d", c=1), 0.0)
    assert chosen == WorkerLoad("d")


def test_prefix_affinity_load_guard_spills_a_hot_prefix_to_a_second_owner() -> None:
    policy = PrefixAffinity(load_factor=2.0)
    hot = RequestKey("chat", prompt=SYSTEM * 10 + "user: hello")
    assert policy.choose(hot, fleet("a", "b", "c"), 0.0) == WorkerLoad("a")
    # a at 4 of 5 outstanding: taking one more (5) stays within 2 x mean (2 x 6 / 3 = 4)? No: 5 > 4, so the
    # guard leaves a out, and the prefix goes to the emptiest of the others, which records it.
    spilled = policy.choose(hot, fleet("a", "b", "c", a=4, b=1), 0.0)
    assert spilled == WorkerLoad("c")
    assert policy.scores(hot, fleet("a", "b", "c")) == {"a": 1.0, "b": 0.0, "c": 1.0}
    # Both owners within the bound: the less loaded owner, not the idle non-owner.
    assert policy.choose(hot, fleet("a", "b", "c", a=2, c=1), 0.0) == WorkerLoad("c", in_flight=1)
    # Without the guard (the default), a keeps the prefix at the same load.
    unguarded = PrefixAffinity()
    unguarded.choose(hot, fleet("a", "b", "c"), 0.0)
    assert unguarded.choose(hot, fleet("a", "b", "c", a=4, b=1), 0.0) == WorkerLoad("a", in_flight=4)
    with pytest.raises(ValueError, match="load_factor"):
        PrefixAffinity(load_factor=1.0)


def test_prefix_affinity_records_a_load_override_on_the_worker_that_took_it() -> None:
    policy = PrefixAffinity(balance_abs=4)
    prompt = RequestKey("chat", prompt=SYSTEM * 10)
    assert policy.choose(prompt, fleet("a", "b"), 0.0) == WorkerLoad("a")
    assert policy.choose(prompt, fleet("a", "b", a=9), 0.0) == WorkerLoad("b")  # imbalanced: sent by load
    assert policy.scores(prompt, fleet("a", "b")) == {"a": 1.0, "b": 1.0}  # b computed it too


def test_prefix_affinity_forgets_what_a_full_kv_cache_must_have_evicted() -> None:
    policy = PrefixAffinity()
    policy.capacity("a", 100)
    old, recent = RequestKey("chat", prompt="old. " * 13 * 40), RequestKey("chat", prompt="new! " * 13 * 40)
    for request in (old, recent):  # 40 blocks each: 80 of the 100 the worker has
        policy.choose(request, fleet("a"), 0.0)
    assert policy.scores(old, fleet("a")) == {"a": 1.0}
    # The scrape says running requests hold 90% of the KV cache: besides the blocks of the request still in
    # flight (the most recent), only 10 blocks can still hold a cached prefix. The older prompt lost its
    # tail first, as vLLM evicts: its first 10 blocks may still hit.
    busy = [WorkerLoad("a", in_flight=1, kv_usage=0.9)]
    policy.choose(RequestKey("chat", prompt="tiny"), busy, 0.0)
    assert policy.scores(old, busy) == {"a": 0.25}
    assert policy.scores(recent, busy) == {"a": 1.0}
    assert policy.cached_blocks("a") == 50
    # With the cache free again, nothing more is forgotten (and nothing forgotten comes back).
    policy.choose(RequestKey("chat", prompt="tiny"), [WorkerLoad("a", kv_usage=0.0)], 0.0)
    assert policy.cached_blocks("a") == 50 and policy.scores(old, busy) == {"a": 0.25}


def test_residency_prefers_workers_with_the_model_loaded() -> None:
    policy = Residency()
    workers = [WorkerLoad("cold", resident=False), WorkerLoad("warm", in_flight=3, resident=True),
               WorkerLoad("unknown", resident=None)]
    assert picks(policy, workers, 5) == {"warm": 5}
    none_warm = [WorkerLoad("x", resident=False, in_flight=2), WorkerLoad("y", resident=None, in_flight=1)]
    assert policy.choose(REQ, none_warm, 0.0) == none_warm[1]


def test_routing_stays_pure() -> None:
    """`routing` imports only the stdlib, its own modules and small pure libraries (never `gateway`)."""
    imported: set[str] = set()
    for path in ROUTING.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    foreign = imported - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY - {"routing", "__future__"}
    assert not foreign, f"routing imports {sorted(foreign)}"
