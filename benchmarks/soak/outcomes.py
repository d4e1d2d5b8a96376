"""What the soak's clients saw, counted as it happens: by status class the way the gateway's metrics
count it (a client that left is 499), by kind of request, and every way an answer can be wrong."""

from __future__ import annotations

import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from benchmarks.soak.traffic import Kind

MAX_PROBLEMS = 20


class FaultSeen(NamedTuple):
    """What the client of a fault request saw, and when (wall clock: the gateway's log lines are)."""

    kind: str
    seen: str
    """The observed class (`observed_class`)."""
    sent_at: float
    ended_at: float
    """When the client had its answer, or left."""


def observed_class(status: int | None, left: bool) -> str:
    """The status class the client saw, as the gateway's metrics name it (`2xx`, `499`, ...)."""
    if left:
        return "499"
    if status is None:
        return "transport"
    return f"{status // 100}xx"


@dataclass(slots=True)
class Tally:
    """What the clients saw, counted as it happens (bounded memory: no per-request objects kept)."""

    by_class: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    responses: int = 0
    """Responses whose headers arrived."""
    missing_request_id: int = 0
    wrong_request_id: int = 0
    """Responses to a request that sent its own `x-request-id` and got another one back."""
    unexpected_normal: int = 0
    """Normal requests and long streams that did not end 200 with a complete answer..."""
    unexpected_ids: list[str] = field(default_factory=list)
    """...and the `x-request-id` of the first few, to find their lines in the gateway's log."""
    silent_truncations: int = 0
    """Streams with status 200 that ended with neither `[DONE]` nor an error event."""
    malformed_errors: int = 0
    """Error answers (status ≥ 400, or an error event) that were not the OpenAI error object."""
    fault_requests: dict[str, FaultSeen] = field(default_factory=dict)
    """Request id of each fault request (they all send their own) -> what its client saw, to find the
    gateway's own line for it in the request log."""
    cache: Counter[str] = field(default_factory=Counter)
    """`x-gateway-cache` of the responses (hit, miss, coalesced, bypass; `-` when absent)."""
    problems: list[str] = field(default_factory=list)
    long_open: int = 0
    """Long streams open now (sent, not yet ended)..."""
    long_open_max: int = 0
    long_completed: int = 0
    long_seconds: float = 0.0
    """...and the seconds the completed ones lasted, together."""
    done_at: array[float] = field(default_factory=lambda: array("d"))
    """Monotonic end time of each normal request that ended 200 and complete..."""
    latency_s: array[float] = field(default_factory=lambda: array("d"))
    """...and its latency (request sent to the last byte)."""

    @property
    def completed(self) -> int:
        return sum(self.by_class.values())

    def note(self, problem: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def count(self, kind: Kind, label: str, klass: str, request_id: str | None, sent_at: float) -> None:
        """One request's outcome; `sent_at`: when it was sent (`time.time()`)."""
        self.by_class[klass] += 1
        self.by_kind.setdefault(kind.name, Counter())[label] += 1
        if kind.fault and request_id is not None:
            self.fault_requests[request_id] = FaultSeen(kind.name, klass, sent_at, time.time())
