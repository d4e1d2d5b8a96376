"""Passive health: outlier ejection and panic mode, with Envoy's semantics and defaults.

A worker that fails `consecutive_failures` requests in a row is ejected for
`base_ejection_s * its ejection count`, capped at `max_ejection_s` (30 s, 60 s, 90 s, … 300 s).
The count decays by one for every `ejection_decay_s` the worker then stays un-ejected (Envoy
decrements it each healthy interval), so one bad hour does not cost five-minute ejections forever.

Ejection is a property of the worker (a failing server fails every model it serves); how much of a
pool may be held out is decided per pool, in `eligible`: at most `max_ejection_percent` of the pool
(the earliest ejected first) and never its last worker up. When fewer than
`panic_threshold_percent` of the pool is healthy (neither held out nor down), health is ignored and
the whole pool is returned (panic mode): spreading over every worker beats crushing the few left.

`record_failure` is for real failures only: connection refused or reset, timeouts, 5xx other than
overload. A full worker (vLLM 503 queue overflow, Ollama 503) is busy, not broken: the gateway
retries elsewhere and records nothing (or a success), so a busy fleet is never ejected.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

WorkerHealthView = dict[str, float | int | bool | None]


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    consecutive_failures: int = 5
    """Failures in a row that eject a worker."""
    base_ejection_s: float = 30.0
    """The first ejection's length; the n-th lasts n times as long."""
    max_ejection_s: float = 300.0
    """The longest an ejection lasts."""
    max_ejection_percent: int = 50
    """The largest share of a pool held out at once (never its last worker up)."""
    panic_threshold_percent: int = 50
    """Below this share of healthy workers, route to the whole pool."""
    ejection_decay_s: float = 300.0
    """Each such period a worker stays un-ejected lowers its ejection count by one (0: never)."""

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures must be at least 1")
        if not 0 < self.base_ejection_s <= self.max_ejection_s:
            raise ValueError("need 0 < base_ejection_s <= max_ejection_s")
        if not (0 <= self.max_ejection_percent <= 100 and 0 <= self.panic_threshold_percent <= 100):
            raise ValueError("percentages must be within 0..100")
        if self.ejection_decay_s < 0:
            raise ValueError("ejection_decay_s must not be negative")


@dataclass(slots=True)
class _WorkerState:
    consecutive: int = 0
    ejections: int = 0
    """Every ejection so far (for the admin view)."""
    multiplier: int = 0
    """The factor of the last ejection's length; grows by one per ejection and decays."""
    ejected_at: float = 0.0
    ejected_until: float | None = None


class OutlierDetector:
    """Counts consecutive failures per worker, ejects outliers and says which workers to route to."""

    def __init__(self, config: OutlierConfig = OutlierConfig()) -> None:
        self.config = config
        self._workers: dict[str, _WorkerState] = {}
        self._max_multiplier = math.ceil(config.max_ejection_s / config.base_ejection_s)

    def record_success(self, worker: str, now: float) -> None:
        """A request succeeded: the consecutive-failure count starts over (an ejection still runs)."""
        state = self._workers.get(worker)
        if state is not None:
            state.consecutive = 0

    def record_failure(self, worker: str, now: float) -> bool:
        """A real failure (not a full queue: see the module docstring). True when it ejected the worker."""
        state = self._workers.setdefault(worker, _WorkerState())
        state.consecutive += 1
        if self._is_ejected(state, now) or state.consecutive < self.config.consecutive_failures:
            return False
        state.multiplier = min(self._decayed_multiplier(state, now) + 1, self._max_multiplier)
        state.ejections += 1
        state.consecutive = 0
        state.ejected_at = now
        state.ejected_until = now + min(self.config.base_ejection_s * state.multiplier, self.config.max_ejection_s)
        return True

    def is_ejected(self, worker: str, now: float) -> bool:
        """Whether the worker is serving an ejection (a pool may still use it: see `eligible`)."""
        state = self._workers.get(worker)
        return state is not None and self._is_ejected(state, now)

    def eligible(self, pool: Sequence[str], now: float, *, down: Collection[str] = ()) -> tuple[list[str], bool]:
        """The workers of `pool` to route to, and whether panic mode is on.

        `down` holds the workers failing active health checks: they are left out, uncapped.
        Ejected workers are left out, the earliest ejected first, up to `max_ejection_percent` of
        the pool and never the last worker up. In panic the whole pool is returned, in its order."""
        if not pool:
            return [], False
        up = [w for w in pool if w not in down]
        ejected = sorted((w for w in up if self.is_ejected(w, now)), key=lambda w: (self._workers[w].ejected_at, w))
        allowed = min(len(pool) * self.config.max_ejection_percent // 100, len(up) - 1)
        held_out = set(ejected[:max(allowed, 0)])
        healthy = [w for w in up if w not in held_out]
        if not healthy or len(healthy) * 100 < self.config.panic_threshold_percent * len(pool):
            return list(pool), True
        return healthy, False

    def forget(self, worker: str) -> None:
        """Drop a worker's state (it left the fleet)."""
        self._workers.pop(worker, None)

    def snapshot(self, now: float) -> dict[str, WorkerHealthView]:
        """Per known worker: ejected, ejections, multiplier, consecutive_failures, ejected_until."""
        return {
            name: {
                "ejected": self._is_ejected(state, now),
                "ejections": state.ejections,
                "multiplier": self._decayed_multiplier(state, now),
                "consecutive_failures": state.consecutive,
                "ejected_until": state.ejected_until if self._is_ejected(state, now) else None,
            }
            for name, state in sorted(self._workers.items())
        }

    @staticmethod
    def _is_ejected(state: _WorkerState, now: float) -> bool:
        return state.ejected_until is not None and now < state.ejected_until

    def _decayed_multiplier(self, state: _WorkerState, now: float) -> int:
        decay = self.config.ejection_decay_s
        if state.ejected_until is None or now < state.ejected_until or decay == 0:
            return state.multiplier
        return max(0, state.multiplier - int((now - state.ejected_until) // decay))
