"""Which worker of a model takes a request: policies with one verb, fed plain snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Candidate(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> int: ...


C = TypeVar("C", bound=Candidate)


class WeightedRoundRobin:
    """Smooth weighted round robin (as nginx does it): each candidate gets turns in proportion to
    its weight, interleaved rather than in bursts. A weight of 0 takes no traffic."""

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], int] = {}

    def choose(self, key: str, candidates: Sequence[C]) -> C | None:
        live = [c for c in candidates if c.weight > 0]
        if len(live) <= 1:
            return live[0] if live else None
        total = 0
        best = live[0]
        best_score = None
        for candidate in live:
            slot = (key, candidate.name)
            score = self._current.get(slot, 0) + candidate.weight
            self._current[slot] = score
            total += candidate.weight
            if best_score is None or score > best_score:
                best, best_score = candidate, score
        self._current[(key, best.name)] -= total
        return best
