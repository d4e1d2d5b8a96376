"""The `WorkerPolicy` protocol and the policies that take turns: round robin and smooth weighted round
robin (the load-aware ones are in `least_load`).

Every policy has one verb, `choose(request, candidates, now)`, and returns the chosen candidate, or
None when no candidate can take traffic (none given, or all drained with weight 0). Candidates are
the healthy workers of the requested model; the gateway filters health before it asks.
Turn-taking is by worker name, so the order and the subset of candidates may change between calls.
`explain` gives the same decision with each candidate's figures, changing nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from routing.policies.explanation import Explanation, figures
from routing.snapshot import RequestKey, WorkerLoad, usable

DEFAULT_FADE_S = 10.0
"""How long a scrape says anything about other gateways' load (`WorkerLoad.others`): twice the default
scrape interval (`health.interval`, 5 s), so a scrape that stops arriving stops counting."""


class WorkerPolicy(Protocol):
    """Chooses the worker of a model that takes a request, from plain snapshots."""

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        """The worker that takes `request`; None only when no candidate can take traffic."""
        ...

    def forget(self, name: str) -> None:
        """Drop what the policy remembers of a worker that left the fleet (a no-op if nothing)."""
        ...

    def explain(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> Explanation:
        """What `choose` would decide now and why, without changing the policy's state."""
        ...


class Rotation:
    """Takes turns among candidates by name, one rotation per key (a model name). Robust to the
    order and the subset of the candidates changing: the next turn goes to the first name after the
    last one chosen, wrapping around."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def next(self, key: str, candidates: Sequence[WorkerLoad], *, commit: bool = True) -> WorkerLoad:
        """The next candidate in turn; `candidates` must not be empty. `commit=False` only looks."""
        ordered = sorted(candidates, key=lambda c: c.name)
        last = self._last.get(key)
        chosen = ordered[0] if last is None else next((c for c in ordered if c.name > last), ordered[0])
        if commit:
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

    def explain(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> Explanation:
        live = usable(candidates)
        chosen = self._turns.next(request.model, live, commit=False) if live else None
        return Explanation(chosen.name if chosen else None, "next in turn (by name); load is not looked at",
                           "nothing: turns only", figures(candidates, now, DEFAULT_FADE_S, scores={}))


class WeightedRoundRobin:
    """Smooth weighted round robin (as nginx does it): each candidate gets turns in proportion to
    its weight, interleaved rather than in bursts (weights 5, 1, 1 give a a b a c a a). A weight of 0
    takes no traffic."""

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], int] = {}

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        return self._credit(request.model, usable(candidates), commit=True)

    def _credit(self, model: str, live: list[WorkerLoad], *, commit: bool) -> WorkerLoad | None:
        """Every candidate gains its weight in credit; the richest is chosen and pays the total."""
        if len(live) <= 1:
            return live[0] if live else None
        total = 0
        best = live[0]
        best_score: int | None = None
        for candidate in live:
            slot = (model, candidate.name)
            score = self._current.get(slot, 0) + candidate.weight
            if commit:
                self._current[slot] = score
            total += candidate.weight
            if best_score is None or score > best_score:
                best, best_score = candidate, score
        if commit:
            self._current[(model, best.name)] -= total
        return best

    def forget(self, name: str) -> None:
        for slot in [s for s in self._current if s[1] == name]:
            del self._current[slot]

    def explain(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> Explanation:
        live = usable(candidates)
        chosen = self._credit(request.model, live, commit=False)
        credit = {c.name: float(self._current.get((request.model, c.name), 0) + c.weight) for c in live}
        return Explanation(chosen.name if chosen else None, "the most turn credit (smooth weighted round robin)",
                           "turn credit: the highest wins", figures(candidates, now, DEFAULT_FADE_S, scores=credit))
