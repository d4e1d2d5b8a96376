"""Requests waiting for a worker slot (overload protection): one bounded first-come-first-served line per
model, and the rule that a slot freed on a worker goes to the oldest request waiting for any model that
worker serves. Pure bookkeeping, no clock and no I/O: the gateway does the waiting (`gateway.inference.worker_slots`).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from routing.catalog import QueueSpec

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """One model's queue, resolved: how many may wait, how long, and the `Retry-After` of a refusal."""

    max_waiting: int
    max_wait_s: float
    retry_after_s: float


def queue_limits(spec: QueueSpec | None, capacity: int) -> QueueLimits:
    """The catalog's `queue` of a model whose workers take `capacity` requests at once; unset fields get
    their defaults (`max_waiting`: the capacity)."""
    if spec is None:
        spec = QueueSpec()
    max_waiting = spec.max_waiting if spec.max_waiting is not None else capacity
    return QueueLimits(max_waiting=max_waiting, max_wait_s=spec.max_wait, retry_after_s=spec.retry_after)


@dataclass(slots=True)
class _Place(Generic[T]):
    arrival: int
    waiter: T


class WaitingLines(Generic[T]):
    """The waiting lines of every model. A waiter is any object (the gateway's is a future), compared by
    identity."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[_Place[T]]] = {}
        self._arrivals = itertools.count()

    def depth(self, model: str) -> int:
        line = self._lines.get(model)
        return len(line) if line else 0

    def join(self, model: str, waiter: T, max_waiting: int) -> bool:
        """Put `waiter` at the back of `model`'s line; False (and nothing changes) if `max_waiting` already wait."""
        line = self._lines.setdefault(model, deque())
        if len(line) >= max_waiting:
            return False
        line.append(_Place(next(self._arrivals), waiter))
        return True

    def leave(self, model: str, waiter: T) -> bool:
        """Take `waiter` out of `model`'s line (it gave up); False if it was not there."""
        line = self._lines.get(model)
        if not line:
            return False
        for index, place in enumerate(line):
            if place.waiter is waiter:
                del line[index]
                return True
        return False

    def next_for(self, models: Iterable[str]) -> tuple[str, T] | None:
        """Remove and return (model, waiter) for the oldest waiter among `models`' lines (a slot freed on a
        worker serving them); None when nobody waits for them."""
        oldest: deque[_Place[T]] | None = None
        oldest_model = ""
        for model in models:
            line = self._lines.get(model)
            if line and (oldest is None or line[0].arrival < oldest[0].arrival):
                oldest, oldest_model = line, model
        if oldest is None:
            return None
        return oldest_model, oldest.popleft().waiter
