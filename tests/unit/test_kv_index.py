"""The precise prefix index and scorer from plain data: vLLM's KV-event payloads decoded, blocks keyed
on token ids whatever the worker's hash seed, and prefix_affinity_precise scoring from them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from routing.catalog import CatalogError, parse_catalog
from routing.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvEventFormatError, decode_batch
from routing.kv_index import KvBlockIndex, block_keys
from routing.policies import PrecisePrefixAffinity, make_policy
from routing.prompt_tokens import PromptTokenizer, SimulatorTokens, simulator_prompt, simulator_token_ids
from routing.snapshot import RequestKey, WorkerLoad
from simulator.kv_events import KvEventLog
from simulator.kv_pool import BlockPool
from simulator.text import serialize_messages, token_ids

BLOCK = 4
TOKENS = list(range(100, 112))  # three blocks of 4


def payload(*events: list[Any], rank: int | None = None) -> bytes:
    batch: list[Any] = [1700000000.5, list(events)]
    return msgspec.msgpack.encode(batch if rank is None else [*batch, rank])


def stored(hashes: list[Any], parent: Any, tokens: list[int], *extra: Any) -> list[Any]:
    return ["BlockStored", hashes, parent, tokens, BLOCK, None, *extra]


def test_a_batch_decodes_whatever_the_release_adds_or_omits() -> None:
    older = payload(stored([b"h1", b"h2"], None, TOKENS[:8]))  # medium omitted (omit_defaults)
    newer = payload(stored([7], 6, TOKENS[:4], "GPU", "lora-a", None, 0), ["BlockRemoved", [7], "GPU", 0],
                    ["AllBlocksCleared"], ["SomethingNew", 1], rank=0)
    assert decode_batch(older).events == (BlockStored((b"h1", b"h2"), None, tuple(TOKENS[:8]), BLOCK),)
    assert decode_batch(newer).events == (BlockStored((7,), 6, tuple(TOKENS[:4]), BLOCK), BlockRemoved((7,)),
                                          AllBlocksCleared())


def test_offloaded_blocks_are_not_the_workers_cache() -> None:
    batch = decode_batch(payload(stored([b"c"], None, TOKENS[:4], "CPU"), ["BlockRemoved", [b"c"], "CPU"]))
    assert batch.events == ()


@pytest.mark.parametrize("bad", [b"\xc1", msgspec.msgpack.encode({"ts": 1}), payload(["BlockStored", [1]]),
                                 payload(["BlockStored", [1], None, ["x"], 4]), payload([3])])
def test_what_is_not_a_batch_is_refused(bad: bytes) -> None:
    with pytest.raises(KvEventFormatError):
        decode_batch(bad)


def test_keys_depend_on_tokens_not_on_the_workers_hashes() -> None:
    seeded_one, seeded_two = KvBlockIndex(), KvBlockIndex()
    seeded_one.apply("w", decode_batch(payload(stored([b"a1", b"a2", b"a3"], None, TOKENS))).events)
    split = payload(stored([11], None, TOKENS[:4]), stored([12, 13], 11, TOKENS[4:]))
    seeded_two.apply("w", decode_batch(split).events)
    keys = block_keys([*TOKENS, 1, 2], BLOCK)  # the partial block has no key
    assert len(keys) == 3
    assert seeded_one.matched("w", keys) == seeded_two.matched("w", keys) == 3
    assert seeded_one.matched("w", block_keys([*TOKENS[:4], 0, 0, 0, 0], BLOCK)) == 1  # diverges at block 2


def test_removals_clears_and_orphans() -> None:
    index = KvBlockIndex()
    index.apply("w", [BlockStored((1, 2, 3), None, tuple(TOKENS), BLOCK)])
    keys = block_keys(TOKENS, BLOCK)
    index.apply("w", [BlockRemoved((2,))])
    assert index.matched("w", keys) == 1 and index.held("w") == 2  # block 3 stays, unreachable, as in vLLM
    index.apply("w", [BlockStored((9,), 404, tuple(TOKENS[:4]), BLOCK)])  # its parent never seen
    assert index.held("w") == 2
    index.apply("w", [AllBlocksCleared()])
    assert index.reports("w") and index.held("w") == 0 and not index.reports("other")


def test_the_same_tokens_twice_stay_held_until_both_go() -> None:
    index = KvBlockIndex()
    index.apply("w", [BlockStored((1,), None, tuple(TOKENS[:4]), BLOCK), BlockStored((2,), None, tuple(TOKENS[:4]),
                                                                                      BLOCK)])
    index.apply("w", [BlockRemoved((1,))])
    assert index.matched("w", block_keys(TOKENS[:4], BLOCK)) == 1
    index.apply("w", [BlockRemoved((2,))])
    assert index.matched("w", block_keys(TOKENS[:4], BLOCK)) == 0


def test_the_simulator_and_the_gateway_cut_the_same_tokens() -> None:
    body = {"messages": [{"role": "system", "content": "You coach."},
                         {"role": "user", "content": [{"type": "text", "text": "Plan my week"}]}, "skipped"]}
    text = serialize_messages(body["messages"])
    assert simulator_prompt(body) == text
    assert simulator_token_ids(text) == token_ids(text)
    assert SimulatorTokens().token_ids(RequestKey("m", body={"prompt": ["ab", "cd"]})) == token_ids("abcd")
    assert SimulatorTokens().token_ids(RequestKey("m")) is None


class Fixed:
    """A tokenizer giving the same ids for every request (or None: cannot tokenize)."""

    def __init__(self, ids: list[int] | None) -> None:
        self.ids = ids

    def token_ids(self, request: RequestKey) -> list[int] | None:
        return self.ids


def precise(index: KvBlockIndex, tokenizer: PromptTokenizer, reporting: set[str]) -> PrecisePrefixAffinity:
    policy = make_policy("prefix_affinity_precise")
    assert isinstance(policy, PrecisePrefixAffinity)
    policy.attach(index, lambda name: (tokenizer, BLOCK) if name in reporting else None)
    return policy


def test_precise_routing_follows_what_the_worker_holds() -> None:
    index = KvBlockIndex()
    index.apply("b", [BlockStored((1, 2, 3), None, tuple(TOKENS), BLOCK)])
    index.apply("a", [])
    policy = precise(index, Fixed([*TOKENS, 5]), {"a", "b", "c"})
    workers = [WorkerLoad("a"), WorkerLoad("b"), WorkerLoad("c")]
    request = RequestKey("m", prompt="x" * 300)
    assert policy.precise_scores(request, workers) == {"a": 0.0, "b": 1.0}  # c has published nothing
    assert [policy.choose(request, workers, 0.0) for _ in range(3)] == [workers[1]] * 3


def test_without_events_precise_routes_as_approximate() -> None:
    request = RequestKey("m", prompt="a shared system prompt " * 20)
    workers = [WorkerLoad("a"), WorkerLoad("b"), WorkerLoad("c")]
    silent = precise(KvBlockIndex(), Fixed(TOKENS), {"a", "b", "c"})
    reporting = KvBlockIndex()
    for name in "abc":
        reporting.apply(name, [])
    unreadable = precise(reporting, Fixed(None), {"a", "b", "c"})
    approximate = make_policy("prefix_affinity")
    for policy in (silent, unreadable):
        assert [policy.choose(request, workers, 0.0) for _ in range(4)] == \
            [approximate.choose(request, workers, 0.0) for _ in range(4)]


def test_the_simulators_pool_logs_its_evictions() -> None:
    log = KvEventLog(block_size=BLOCK)
    pool = BlockPool(capacity=2, block_tokens=BLOCK, events=log)
    assert pool.allocate([], 2)
    assert pool.publish(b"a") and pool.publish(b"b")
    pool.release([b"a", b"b"], 0)  # both cached, evictable, tail first
    assert log.take() == []
    assert pool.allocate([], 1)  # one fresh block: the least recently freed goes
    assert log.take() == [["BlockRemoved", [b"b"], "GPU"]]
    pool.clear()
    assert decode_batch(msgspec.msgpack.encode([0.0, log.take()])).events == (BlockRemoved((b"a",)),)


def test_an_endpoint_must_be_zmq() -> None:
    text = ("models: [{name: chat}]\nworkers:\n  - {name: w, kind: vllm, base_url: 'http://h/v1', models: [chat],"
            " kv_events: {endpoint: 'http://h:5557', tokenizer: simulator}}\n")
    with pytest.raises(CatalogError, match=r"kv_events.endpoint: 'http://h:5557' is not a tcp:// or ipc://"):
        parse_catalog(text)
