"""The load-aware policies: least outstanding requests (the default for every model) and residency.

A worker's load is `WorkerLoad.load`: the gateway's own in-flight requests, exact and updated the
moment a request is sent, plus other gateways' requests, read from the worker's scraped queue net of
ours at the time of the scrape and faded as the scrape ages. The earlier estimate, the larger of ours
and the scraped count, let a scrape up to a second old hide every change to ours: every request in
that second saw the same stale figures, and a burst piled onto whichever worker had looked idle
(p90 TTFT 2.2x round robin's in the routing benchmark). Own counts are exact, so a choice always
moves its worker up one, and the next request sees it.

Load alone still lost to round robin on p90 TTFT: every worker held its share of requests, but in a
closed loop the worker whose request had just ended was always the least loaded, and was refilled at
once behind its own requests still waiting for their prefill. What a new prompt waits for is the
prefills ahead of it (`WorkerLoad.queued`), far more than the decodes beside it (a decode is one token
of a step, a prefill hundreds), so the cost weighs a queued request as `DECODES_PER_PREFILL` loaded ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from routing.policies.balancing import DEFAULT_FADE_S, Rotation
from routing.policies.explanation import Explanation, figures
from routing.snapshot import RequestKey, WorkerLoad, usable

DECODES_PER_PREFILL = 4.0
"""How many requests in flight weigh as much as one still waiting for its first token, in the cost."""

NEAR_TIE = 1.0 / DECODES_PER_PREFILL
"""Costs less than one request in flight apart are a tie: other gateways' share is a faded estimate,
and a fraction of a request is no reason to send a whole burst the same way."""

COST_MEANS = (f"the requests waiting for their first token, plus the estimated load / {DECODES_PER_PREFILL:g}: "
              "the lowest wins")


def cost(worker: WorkerLoad, now: float, fade_s: float) -> float:
    """What `LeastOutstanding` ranks by: the queue a new prompt would wait behind (`WorkerLoad.queued`),
    then the load (`WorkerLoad.load`), which weighs less: a decode slows a step a little, a prefill
    ahead holds the new prompt back for whole steps."""
    return worker.queued(now, fade_s) + worker.load(now, fade_s) / DECODES_PER_PREFILL


class LeastOutstanding:
    """The default policy: the candidate with the least `cost` (queued prefills first, then load).

    Costs less than `NEAR_TIE` above the least are tied; ties go to the higher weight, then take turns
    by name, so equal workers share a burst instead of all of it landing on the first one. Ties do not
    go to the most KV-cache headroom: the scraped usage is as stale as the scraped queue, so it would
    send a second's ties the same way (the benchmark's p90 TTFT was worse with it). `fade_s`: how long
    a scrape counts for other gateways' load (`WorkerLoad.others`). `queue_first=False` ranks by load
    alone (ties less than one request apart), as prefix affinity's load rules, tuned on load, do."""

    def __init__(self, fade_s: float = DEFAULT_FADE_S, *, queue_first: bool = True) -> None:
        if fade_s <= 0:
            raise ValueError("fade_s must be more than 0")
        self.fade_s = fade_s
        self.queue_first = queue_first
        self._turns = Rotation()

    def cost(self, worker: WorkerLoad, now: float) -> float:
        """What this policy ranks by: `cost`, or with `queue_first` off the load on the same scale."""
        if self.queue_first:
            return cost(worker, now, self.fade_s)
        return worker.load(now, self.fade_s) / DECODES_PER_PREFILL

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        live = usable(candidates)
        return self.pick(request.model, live, now) if live else None

    def pick(self, model: str, live: Sequence[WorkerLoad], now: float, *, commit: bool = True) -> WorkerLoad:
        """The cheapest of `live` (usable, not empty); `commit=False` takes no turn."""
        if len(live) == 1:
            return live[0]
        tied = self._ties(live, now)
        if len(tied) > 1:
            heaviest = max(c.weight for c in tied)
            tied = [c for c in tied if c.weight == heaviest]
        return tied[0] if len(tied) == 1 else self._turns.next(model, tied, commit=commit)

    def _ties(self, live: Sequence[WorkerLoad], now: float) -> list[WorkerLoad]:
        """The candidates whose `cost` is less than `NEAR_TIE` above the least."""
        costs = [self.cost(c, now) for c in live]
        bound = min(costs) + NEAR_TIE
        return [c for c, price in zip(live, costs, strict=True) if price < bound]

    def forget(self, name: str) -> None:
        """Nothing to forget: turns are kept by name, and a missing name is simply skipped."""

    def explain(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> Explanation:
        live = usable(candidates)
        chosen = self.pick(request.model, live, now, commit=False) if live else None
        scores = {c.name: self.cost(c, now) for c in candidates}
        return Explanation(chosen.name if chosen else None, self.reason(live, now), COST_MEANS,
                           figures(candidates, now, self.fade_s, scores=scores))

    def reason(self, live: Sequence[WorkerLoad], now: float) -> str:
        """Why `pick` chooses what it does among `live`, in words."""
        if not live:
            return "no candidate can take traffic"
        tied = len(self._ties(live, now))
        rule = ("the fewest requests waiting for their first token, then the least estimated load"
                if self.queue_first else "the least estimated load")
        if tied == 1:
            return rule
        return f"{rule}, tied with {tied - 1} other(s) within one request in flight: the higher weight, then in turn"


class Residency:
    """For Ollama-style workers that load models on demand: prefer the candidates where the model is
    already loaded (`resident is True`, from `GET /api/ps`), least outstanding among them; when none
    is known to hold it, least outstanding among all. A cold load of a 7B model on CPU costs
    seconds, far more than a few queued requests on a warm worker."""

    def __init__(self) -> None:
        self._least = LeastOutstanding()

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        live = usable(candidates)
        warm = [c for c in live if c.resident is True]
        return self._least.choose(request, warm or live, now)

    def forget(self, name: str) -> None:
        """Nothing to forget: residency comes fresh in every snapshot."""

    def explain(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> Explanation:
        live = usable(candidates)
        warm = [c for c in live if c.resident is True]
        chosen = self._least.pick(request.model, warm or live, now, commit=False) if live else None
        where = f"among the {len(warm)} with the model loaded" if warm else "none is known to have the model loaded"
        return Explanation(chosen.name if chosen else None, f"{self._least.reason(warm or live, now)} ({where})",
                           COST_MEANS, figures(candidates, now, self._least.fade_s,
                                               scores={c.name: self._least.cost(c, now) for c in candidates}))
