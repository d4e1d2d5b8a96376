"""Every policy explains its choice: the same worker `choose` would take, why, and each candidate's
figures, without changing what the next `choose` does."""

from __future__ import annotations

import pytest

from routing.policies import PrefixAffinity, make_policy
from routing.snapshot import RequestKey, WorkerLoad

REQ = RequestKey(model="chat", prompt="system: be brief. " * 20 + "user: hello", session="alice")
FLEET = [WorkerLoad("a", in_flight=2, running=5, own_at_scrape=1, scraped_at=9.0, kv_usage=0.4),
         WorkerLoad("b", in_flight=1, kv_usage=0.3), WorkerLoad("c", in_flight=1, kv_usage=0.1),
         WorkerLoad("off", weight=0)]


@pytest.mark.parametrize("name", ["round_robin", "weighted", "least_outstanding", "session_affinity",
                                  "prefix_affinity", "residency"])
def test_explain_names_what_choose_takes_and_changes_nothing(name: str) -> None:
    policy = make_policy(name)
    for _ in range(3):  # explaining twice gives the same answer, and choose then agrees with it
        first, again = policy.explain(REQ, FLEET, 10.0), policy.explain(REQ, FLEET, 10.0)
        assert first == again and first.reason
        chosen = policy.choose(REQ, FLEET, 10.0)
        assert chosen is not None and first.chosen == chosen.name
    assert [c.name for c in first.candidates] == ["a", "b", "c", "off"]
    assert make_policy(name).explain(REQ, [], 0.0).chosen is None


def test_least_outstanding_explains_the_load_it_compared() -> None:
    why = make_policy("least_outstanding").explain(REQ, FLEET, 10.0)
    a = why.candidates[0]
    # 5 running at the scrape a second ago, 1 of them ours: 4 others', faded by a tenth; ours are 2 now.
    # None waits for its first token: the cost is the load over 4.
    assert a.in_flight == 2 and a.others == pytest.approx(3.6) and a.load == pytest.approx(5.6)
    assert a.queued == 0 and a.score == pytest.approx(1.4)
    assert why.chosen in {"b", "c"} and "in turn" in why.reason  # b and c tie at 0.25 (a's 1.4 is not under 0.5)


def test_least_outstanding_explains_the_queue_it_compared() -> None:
    # b's one request waits for its first token, and 2 of the 3 the scrape saw waiting on c are not ours.
    fleet = [WorkerLoad("b", in_flight=1, prefilling=1),
             WorkerLoad("c", in_flight=1, waiting=3, running=1, own_at_scrape=1, own_prefilling_at_scrape=1,
                        scraped_at=10.0)]
    b, c = make_policy("least_outstanding").explain(REQ, fleet, 10.0).candidates
    assert (b.queued, b.score) == (1, 1.25) and (c.queued, c.load, c.score) == (2, 4, 3)


def test_prefix_affinity_explains_the_cached_share() -> None:
    policy = PrefixAffinity()
    owner = policy.choose(REQ, FLEET, 10.0)
    assert owner is not None
    why = policy.explain(RequestKey("chat", prompt=REQ.prompt + " again"), FLEET, 10.0)
    cached = {c.name: c.cached for c in why.candidates}
    assert cached[owner.name] == 1.0 and why.chosen == owner.name and "cached prefix" in why.reason
    assert all(share == 0.0 for name, share in cached.items() if name != owner.name)
