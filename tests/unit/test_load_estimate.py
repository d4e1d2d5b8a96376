"""How the default policy estimates a worker's load, from snapshots alone: its own in-flight requests
exactly, other gateways' from a scrape that may be a second old, and a burst that must not pile onto
the worker whose stale scrape looks lightest (the herding the routing benchmark showed)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

from routing.policies import LeastOutstanding, RoundRobin, WorkerPolicy
from routing.snapshot import RequestKey, WorkerLoad

REQ = RequestKey(model="chat")
NAMES = [f"w{i}" for i in range(8)]


def spread(loads: dict[str, WorkerLoad]) -> float:
    """The busiest worker's in-flight requests over the mean."""
    counts = [load.in_flight for load in loads.values()]
    return max(counts) / (sum(counts) / len(counts))


def burst(policy: WorkerPolicy, base: dict[str, WorkerLoad], n: int, now: float) -> dict[str, WorkerLoad]:
    """The snapshots after `n` requests chosen one after another, the gateway's own in-flight count
    updated after each choice (as the gateway does) while the scraped figures stay what they were."""
    loads = dict(base)
    for _ in range(n):
        chosen = policy.choose(REQ, list(loads.values()), now)
        assert chosen is not None
        loads[chosen.name] = replace(chosen, in_flight=chosen.in_flight + 1)
    return loads


def sent(before: dict[str, WorkerLoad], after: dict[str, WorkerLoad]) -> Counter[str]:
    return Counter({n: after[n].in_flight - before[n].in_flight for n in before})


def test_a_stale_scrape_does_not_herd_a_burst_onto_the_worker_that_looked_idle() -> None:
    # Half a second ago the scrape read 8 requests on every worker but w7, which had just come up (0), all of
    # them ours. Since then 6 finished on each: the gateway has 2 in flight on each but w7. A burst of 32.
    base = {n: WorkerLoad(n, in_flight=0 if n == "w7" else 2, running=0 if n == "w7" else 8,
                          own_at_scrape=0 if n == "w7" else 8, scraped_at=9.5) for n in NAMES}
    after = burst(LeastOutstanding(), base, 32, now=10.0)
    # max(in_flight, scraped) saw the others at 8 for the whole second however many of their requests had
    # ended, and w7's count grow from 0: w7 took 8 requests before any other worker got one (ending at 9 in
    # flight against 5.75 on average: 1.57). Our own count is exact; the scrape holds nothing but ours.
    assert spread(after) <= 1.1, sent(base, after)


def test_other_gateways_load_counts_net_of_ours_and_fades_with_the_scrape_age() -> None:
    # w0 ran 10 requests at the scrape, 2 of them ours: 8 are other gateways'; ours are 2 now.
    base = {n: WorkerLoad(n, in_flight=2 if n == "w0" else 0, running=10 if n == "w0" else 0,
                          own_at_scrape=2 if n == "w0" else 0, scraped_at=10.0) for n in NAMES}
    policy = LeastOutstanding()
    fade = policy.fade_s
    assert base["w0"].others(10.0, fade) == 8.0 and base["w0"].load(10.0, fade) == 10.0
    assert sent(base, burst(policy, base, 7 * 9, now=10.0))["w0"] == 0  # the others fill up to w0's 10 first
    # As the scrape ages, others' requests count for less (they end, and it says less about them)...
    assert base["w0"].others(10.0 + fade / 2, fade) == 4.0
    # ...and nothing once it is as old as the fade time: w0 counts only our 2.
    assert base["w0"].others(10.0 + fade, fade) == 0.0
    assert sent(base, burst(policy, base, 14, now=10.0 + fade))["w0"] == 0
    assert sent(base, burst(policy, base, 22, now=10.0 + fade))["w0"] == 1


def test_a_scrape_that_counts_fewer_than_ours_adds_nothing() -> None:
    # Our requests still on their way to the worker, or finished there but not yet here: never negative.
    load = WorkerLoad("w0", in_flight=5, running=2, waiting=1, own_at_scrape=5, scraped_at=0.0)
    assert load.others(0.5, 10.0) == 0.0 and load.load(0.5, 10.0) == 5.0


def test_near_ties_take_turns_whatever_the_stale_kv_usage() -> None:
    policy = LeastOutstanding()
    # Others' load a fraction of a request apart is a tie: each worker in turn, not always the lowest; and
    # not always the one whose KV usage (as stale as the scrape) looked lowest.
    fractional = [WorkerLoad(n, running=i % 2, own_at_scrape=0, scraped_at=0.0, kv_usage=i / 10)
                  for i, n in enumerate(NAMES)]
    firsts = Counter(c.name for c in (policy.choose(REQ, fractional, policy.fade_s * 0.6) for _ in range(80)) if c)
    assert set(firsts.values()) == {10}


@dataclass
class Gateway:
    """One gateway replica: its own policy, its own in-flight counts, the scrape it last read."""

    policy: WorkerPolicy
    phase: int
    own: Counter[str] = field(default_factory=Counter)
    scraped: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    """Per worker: the fleet's running requests, ours among them, and when it was read."""

    def snapshot(self) -> list[WorkerLoad]:
        return [WorkerLoad(n, in_flight=self.own[n], running=self.scraped[n][0], own_at_scrape=self.scraped[n][1],
                           scraped_at=self.scraped[n][2]) if n in self.scraped else WorkerLoad(n, in_flight=self.own[n])
                for n in NAMES]


class BlindGateway(Gateway):
    """A replica that ignores the scrapes: it knows only its own requests."""

    def snapshot(self) -> list[WorkerLoad]:
        return [WorkerLoad(n, in_flight=self.own[n]) for n in NAMES]


def simulate(gateways: list[Gateway], *, ticks: int = 1500, clients_per_gateway: int = 16, seed: int = 7) -> float:
    """A closed loop over one fleet in 0.1 s ticks: each gateway's clients send a new request as soon as their
    last one ends; a request needs 5 to 40 ticks of work, and a worker running more than 4 at once slows
    each down in proportion (a batch past its sweet spot). Every gateway scrapes every worker each second
    (its own phase). The time-averaged ratio of the busiest worker's requests to the mean."""
    rng = random.Random(seed)
    work: list[tuple[Gateway, str, float]] = []  # (gateway, worker, work left)

    def send(gateway: Gateway, now: float) -> None:
        chosen = gateway.policy.choose(REQ, gateway.snapshot(), now)
        assert chosen is not None
        gateway.own[chosen.name] += 1
        work.append((gateway, chosen.name, float(rng.randint(5, 40))))

    for gateway in gateways:
        for _ in range(clients_per_gateway):
            send(gateway, 0.0)
    ratios = []
    for tick in range(1, ticks):
        now = tick / 10
        running = Counter(worker for _, worker, _ in work)
        for gateway in gateways:
            if tick % 10 == gateway.phase:
                gateway.scraped = {n: (running[n], gateway.own[n], now) for n in NAMES}
        ratios.append(max(running.values()) / (len(work) / len(NAMES)))
        left = []
        for gateway, worker, remaining in work:
            remaining -= min(1.0, 4 / running[worker])
            if remaining > 0:
                left.append((gateway, worker, remaining))
            else:
                gateway.own[worker] -= 1
        finished = len(work) - len(left)
        work = left
        for done in range(finished):
            send(gateways[done % len(gateways)], now)
    return sum(ratios) / len(ratios)


def test_one_gateway_balances_a_closed_loop_better_than_round_robin() -> None:
    least = simulate([Gateway(LeastOutstanding(), phase=0)], clients_per_gateway=48)
    turns = simulate([Gateway(RoundRobin(), phase=0)], clients_per_gateway=48)
    assert least < turns and least < 1.3, (least, turns)


def test_three_gateways_sharing_a_fleet_see_each_other_through_scrapes() -> None:
    least = simulate([Gateway(LeastOutstanding(), phase=p) for p in (0, 3, 6)])
    turns = simulate([Gateway(RoundRobin(), phase=p) for p in (0, 3, 6)])
    assert least < turns and least < 1.3, (least, turns)


def test_three_gateways_even_out_a_fleet_loaded_unevenly_by_one_of_them() -> None:
    # One replica still runs round robin; the two others see its load only through their scrapes, and
    # even out what it leaves uneven better than if they knew only their own requests.
    seeing = simulate([Gateway(RoundRobin(), phase=0), Gateway(LeastOutstanding(), phase=3),
                       Gateway(LeastOutstanding(), phase=6)])
    blind = simulate([Gateway(RoundRobin(), phase=0), BlindGateway(LeastOutstanding(), phase=3),
                      BlindGateway(LeastOutstanding(), phase=6)])
    turns = simulate([Gateway(RoundRobin(), phase=p) for p in (0, 3, 6)])
    assert seeing < blind < turns, (seeing, blind, turns)

