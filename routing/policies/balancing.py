"""Load-balancing policies that look only at weights and load: the `WorkerPolicy` protocol, round
robin, smooth weighted round robin, least outstanding requests (the default) and residency.

Every policy has one verb, `choose(request, candidates, now)`, and returns the chosen candidate, or
None when no candidate can take traffic (none given, or all drained with weight 0). Candidates are
the healthy workers of the requested model; the gateway filters health before it asks.
Turn-taking is by worker name, so the order and the subset of candidates may change between calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from routing.snapshot import RequestKey, WorkerLoad, usable


class WorkerPolicy(Protocol):
    """Chooses the worker of a model that takes a request, from plain snapshots."""

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        """The worker that takes `request`; None only when no candidate can take traffic."""
        ...

    def forget(self, name: str) -> None:
        """Drop what the policy remembers of a worker that left the fleet (a no-op if nothing)."""
        ...


class Rotation:
    """Takes turns among candidates by name, one rotation per key (a model name). Robust to the
    order and the subset of the candidates changing: the next turn goes to the first name after the
    last one chosen, wrapping around."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def next(self, key: str, candidates: Sequence[WorkerLoad]) -> WorkerLoad:
        """The next candidate in turn; `candidates` must not be empty."""
        ordered = sorted(candidates, key=lambda c: c.name)
        last = self._last.get(key)
        chosen = ordered[0] if last is None else next((c for c in ordered if c.name > last), ordered[0])
        self._last[key] = chosen.name
        return chosen


class RoundRobin:
    """Each usable candidate in turn, per model; weights other than 0 are ignored."""

    def __init__(self) -> None:
        self._turns = Rotation()

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        live = usable(candidates)
        if not live:
            return None
        return self._turns.next(request.model, live)

    def forget(self, name: str) -> None:
        """Nothing to forget: turns are kept by name, and a missing name is simply skipped."""


class WeightedRoundRobin:
    """Smooth weighted round robin (as nginx does it): each candidate gets turns in proportion to
    its weight, interleaved rather than in bursts (weights 5, 1, 1 give a a b a c a a). A weight of 0
    takes no traffic."""

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], int] = {}

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        live = usable(candidates)
        if len(live) <= 1:
            return live[0] if live else None
        model = request.model
        total = 0
        best = live[0]
        best_score: int | None = None
        for candidate in live:
            slot = (model, candidate.name)
            score = self._current.get(slot, 0) + candidate.weight
            self._current[slot] = score
            total += candidate.weight
            if best_score is None or score > best_score:
                best, best_score = candidate, score
        self._current[(model, best.name)] -= total
        return best

    def forget(self, name: str) -> None:
        for slot in [s for s in self._current if s[1] == name]:
            del self._current[slot]


class LeastOutstanding:
    """The default policy: the candidate with the fewest outstanding requests, `in_flight` (the
    gateway's own, exact) plus `waiting` (the worker's scraped queue, 0 when unknown).

    Ties go to the higher weight, then take turns by name, so equal idle workers share a burst
    instead of all of it landing on the first one."""

    def __init__(self) -> None:
        self._turns = Rotation()

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        live = usable(candidates)
        if not live:
            return None
        low = min(c.outstanding for c in live)
        tied = [c for c in live if c.outstanding == low]
        if len(tied) > 1:
            heaviest = max(c.weight for c in tied)
            tied = [c for c in tied if c.weight == heaviest]
        return tied[0] if len(tied) == 1 else self._turns.next(request.model, tied)

    def forget(self, name: str) -> None:
        """Nothing to forget: see `RoundRobin.forget`."""


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
