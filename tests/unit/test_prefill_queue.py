"""The default policy looks at what a new prompt would wait behind: the requests on a worker still waiting
for their first token, before the requests decoding. Counting requests alone refilled, in a closed loop,
the worker whose request had just ended, behind its own prefills, while the others' prefills were over
(the routing benchmark's uniform workload: p90 TTFT 2,203 ms against round robin's 1,724)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from routing.policies import LeastOutstanding
from routing.snapshot import RequestKey, WorkerLoad

REQ = RequestKey(model="chat")
NOW = 10.0


def fleet(prefilling: dict[str, int], in_flight: dict[str, int]) -> list[WorkerLoad]:
    return [WorkerLoad(name, in_flight=in_flight[name], prefilling=prefilling.get(name, 0)) for name in in_flight]


def test_the_worker_just_freed_is_not_refilled_behind_its_own_prefills() -> None:
    # 48 clients on 8 workers, 6 each. One of w0's requests just ended: 5 left, 2 of them still waiting for
    # their first token (the last ones it was sent). The other workers hold 6, w3 and w5 one prefill each,
    # the rest none: all theirs decode.
    in_flight = {f"w{i}": 6 for i in range(8)} | {"w0": 5}
    workers = fleet({"w0": 2, "w3": 1, "w5": 1}, in_flight)
    fade = LeastOutstanding().fade_s
    # By load alone w0 is the only least loaded worker: the new prompt would wait behind two prefills.
    assert min(workers, key=lambda w: w.load(NOW, fade)).name == "w0"
    assert sorted(w.load(NOW, fade) for w in workers)[:2] == [5, 6]
    # By the queue first, it goes where no prefill is ahead of it, taking turns among those.
    policy = LeastOutstanding()
    chosen = [policy.choose(REQ, workers, NOW) for _ in range(5)]
    assert {c.name for c in chosen if c is not None} == {"w1", "w2", "w4", "w6", "w7"}


def test_a_burst_of_prompts_spreads_by_queue_and_load_counts_for_less() -> None:
    # w0 decodes 8 requests, no prefill; w1..w3 decode 1 each. A burst of 12 new prompts, each counted as
    # prefilling on its worker once chosen (as the gateway does until the first token).
    workers = {w.name: w for w in fleet({}, {"w0": 8, "w1": 1, "w2": 1, "w3": 1})}
    policy, sent = LeastOutstanding(), Counter[str]()
    for _ in range(12):
        chosen = policy.choose(REQ, list(workers.values()), NOW)
        assert chosen is not None
        workers[chosen.name] = replace(chosen, in_flight=chosen.in_flight + 1, prefilling=chosen.prefilling + 1)
        sent[chosen.name] += 1
    # Load alone would send w0 nothing until the others reached 8 in flight. A prefill ahead weighs as 4
    # decodes: w0's 8 decodes count as two prefills queued, so w0 takes its first once the others hold 2.
    assert sent["w0"] >= 1 and max(sent.values()) - min(sent.values()) <= 3, sent
    assert sent["w0"] < min(sent[n] for n in ("w1", "w2", "w3")), sent


def test_with_no_prefill_anywhere_the_least_load_wins_as_before() -> None:
    workers = fleet({}, {"w0": 3, "w1": 2, "w2": 4})
    assert LeastOutstanding().choose(REQ, workers, NOW) == workers[1]


def test_other_gateways_waiting_counts_net_of_ours_and_fades() -> None:
    # The scrape a second ago saw 4 waiting on w0, 1 of them ours (still prefilling): 3 are others'.
    w0 = WorkerLoad("w0", in_flight=1, prefilling=1, waiting=4, running=0, own_at_scrape=1,
                    own_prefilling_at_scrape=1, scraped_at=NOW - 1.0)
    fade = LeastOutstanding().fade_s
    assert w0.queued(NOW - 1.0, fade) == 4 and w0.queued(NOW, fade) == 1 + 3 * (1 - 1.0 / fade)
    assert w0.queued(NOW + fade, fade) == 1  # a scrape that old says nothing about others' queue


def test_prefix_affinity_load_rules_still_rank_by_load_alone() -> None:
    # Its balance rules are tuned in load: w0 (5 in flight, 2 prefilling) is still its least loaded.
    in_flight = {"w0": 5, "w1": 6}
    assert LeastOutstanding(queue_first=False).choose(REQ, fleet({"w0": 2}, in_flight), NOW) is not None
    assert LeastOutstanding(queue_first=False).pick("chat", fleet({"w0": 2}, in_flight), NOW).name == "w0"
    assert LeastOutstanding().pick("chat", fleet({"w0": 2}, in_flight), NOW).name == "w1"
