"""Active health: the threshold state machine behind periodic probes (vLLM `GET /health`,
Ollama `GET /`).

A worker starts healthy. `unhealthy_threshold` failed probes in a row mark it down;
`healthy_threshold` passed probes in a row bring it back. One odd result does not flip it, and a
result that agrees with the current state clears any streak toward flipping. The gateway runs the
probes and passes `down()` to `OutlierDetector.eligible`.
"""

from __future__ import annotations


class ActiveHealth:
    """Which workers are down according to active health checks."""

    def __init__(self, unhealthy_threshold: int = 2, healthy_threshold: int = 1) -> None:
        if unhealthy_threshold < 1 or healthy_threshold < 1:
            raise ValueError("health thresholds must be at least 1")
        self.unhealthy_threshold = unhealthy_threshold
        self.healthy_threshold = healthy_threshold
        self._down: set[str] = set()
        self._streak: dict[str, int] = {}
        """Consecutive probe results that disagree with the worker's current state."""

    def record(self, worker: str, ok: bool) -> bool:
        """Record one probe result; returns whether the worker is healthy afterwards."""
        is_down = worker in self._down
        if ok != is_down:  # the result agrees with the current state
            self._streak.pop(worker, None)
            return not is_down
        streak = self._streak.get(worker, 0) + 1
        if streak < (self.healthy_threshold if is_down else self.unhealthy_threshold):
            self._streak[worker] = streak
            return not is_down
        self._streak.pop(worker, None)
        if is_down:
            self._down.discard(worker)
        else:
            self._down.add(worker)
        return is_down

    def is_down(self, worker: str) -> bool:
        return worker in self._down

    def down(self) -> set[str]:
        """The workers currently down (a copy)."""
        return set(self._down)

    def forget(self, worker: str) -> None:
        """Drop a worker's state (it left the fleet)."""
        self._down.discard(worker)
        self._streak.pop(worker, None)
