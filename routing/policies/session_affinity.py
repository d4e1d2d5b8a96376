"""Session affinity: a consistent hash of the session (or user) id pins a conversation to a worker,
so its growing history keeps hitting the same prefix cache.

The ring holds `virtual_nodes * weight` points per worker (xxh64 of `name#i`); a session goes to
the first point at or after the hash of its id. Because the ring is built from the candidates of
each call, a worker that is ejected, down or removed loses only its own sessions (about 1/N of
them), which move to their next point; the others stay where they were.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

import xxhash

from routing.policies.explanation import Explanation, figures
from routing.policies.least_load import COST_MEANS, LeastOutstanding
from routing.snapshot import RequestKey, WorkerLoad, usable

_RING_CACHE_SIZE = 64  # rings kept for recent candidate sets (a set changes on ejection or reload)


@dataclass(frozen=True, slots=True)
class _Ring:
    points: tuple[int, ...]
    owners: tuple[str, ...]

    def owner(self, key: str) -> str:
        index = bisect_left(self.points, xxhash.xxh64_intdigest(key.encode("utf-8")))
        return self.owners[index % len(self.owners)]


def _build_ring(members: tuple[tuple[str, int], ...], virtual_nodes: int) -> _Ring:
    placed = sorted(
        (xxhash.xxh64_intdigest(f"{name}#{i}".encode()), name)
        for name, weight in members
        for i in range(virtual_nodes * weight)
    )
    return _Ring(points=tuple(p for p, _ in placed), owners=tuple(n for _, n in placed))


class SessionAffinity:
    """Consistent hashing with virtual nodes on `request.session`.

    Falls back to least outstanding when the request has no session, or when the pinned worker is
    overloaded: its `in_flight` exceeds `overload_factor * mean in_flight + overload_slack` over the
    candidates (defaults: more than 2 * mean + 2). The slack keeps a quiet fleet sticky (mean 0: the
    pinned worker may hold 2 requests before its sessions spill); the factor lets it carry twice
    its share of a busy fleet before they do. A spilled request does not move the pin: the session
    returns to its worker once the load evens out.
    """

    def __init__(self, virtual_nodes: int = 100, overload_factor: float = 2.0, overload_slack: int = 2) -> None:
        if virtual_nodes < 1:
            raise ValueError("virtual_nodes must be at least 1")
        if overload_factor < 1 or overload_slack < 0:
            raise ValueError("overload_factor must be at least 1 and overload_slack at least 0")
        self.virtual_nodes = virtual_nodes
        self.overload_factor = overload_factor
        self.overload_slack = overload_slack
        self._rings: dict[tuple[tuple[str, int], ...], _Ring] = {}
        self._least = LeastOutstanding()

    def choose(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> WorkerLoad | None:
        live = usable(candidates)
        if request.session is None or len(live) <= 1:
            return self._least.choose(request, live, now)
        by_name = {c.name: c for c in live}
        pinned = by_name[self._ring(live).owner(request.session)]
        if self.overloaded(pinned, live):
            return self._least.choose(request, live, now)
        return pinned

    def explain(self, request: RequestKey, candidates: Sequence[WorkerLoad], now: float) -> Explanation:
        live = usable(candidates)
        table = figures(candidates, now, self._least.fade_s,
                        scores={c.name: self._least.cost(c, now) for c in candidates})
        if not live:
            return Explanation(None, "no candidate can take traffic", COST_MEANS, table)
        if request.session is None or len(live) <= 1:
            why = "no session id: " if request.session is None else ""
            chosen = self._least.pick(request.model, live, now, commit=False)
            return Explanation(chosen.name, why + self._least.reason(live, now), COST_MEANS, table)
        pinned = next(c for c in live if c.name == self._ring(live).owner(request.session))
        if self.overloaded(pinned, live):
            chosen = self._least.pick(request.model, live, now, commit=False)
            return Explanation(chosen.name, f"the session's worker {pinned.name} is overloaded (in flight over "
                               f"{self.overload_factor} x the mean + {self.overload_slack}): "
                               + self._least.reason(live, now), COST_MEANS, table)
        return Explanation(pinned.name, "the session's worker (consistent hash of the session id)", COST_MEANS, table)

    def pinned(self, session: str, candidates: Sequence[WorkerLoad]) -> str | None:
        """The worker `session` hashes to among `candidates`, ignoring load (for tests and admin)."""
        live = usable(candidates)
        return self._ring(live).owner(session) if live else None

    def overloaded(self, worker: WorkerLoad, candidates: Sequence[WorkerLoad]) -> bool:
        """The spill rule: `in_flight > overload_factor * mean in_flight + overload_slack`."""
        mean = sum(c.in_flight for c in candidates) / len(candidates)
        return worker.in_flight > self.overload_factor * mean + self.overload_slack

    def forget(self, name: str) -> None:
        self._rings = {members: ring for members, ring in self._rings.items() if name not in ring.owners}

    def _ring(self, live: Sequence[WorkerLoad]) -> _Ring:
        members = tuple(sorted((c.name, c.weight) for c in live))
        ring = self._rings.get(members)
        if ring is None:
            if len(self._rings) >= _RING_CACHE_SIZE:
                self._rings.clear()
            ring = self._rings[members] = _build_ring(members, self.virtual_nodes)
        return ring
