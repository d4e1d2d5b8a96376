"""What a worker policy sees at decision time: plain, frozen snapshots built by the gateway.

`WorkerLoad` is one candidate worker of the requested model (already filtered by health: the
gateway passes only the workers `OutlierDetector.eligible` returns); `RequestKey` is the part of a
request a policy may look at. Both are data only, so every policy is tested from literals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """One candidate worker as a policy sees it when it decides."""

    name: str
    weight: int = 1
    """The catalog weight. 0 drains the worker: every policy skips it (see `usable`)."""
    in_flight: int = 0
    """The gateway's own outstanding requests to this worker (exact, never stale)."""
    waiting: int | None = None
    """vLLM `num_requests_waiting` from the last scrape; None when unknown (Ollama, llama.cpp)."""
    running: int | None = None
    """vLLM `num_requests_running` from the last scrape; None when unknown."""
    kv_usage: float | None = None
    """vLLM `kv_cache_usage_perc`, 0..1; None when unknown."""
    resident: bool | None = None
    """Ollama: the requested model is loaded in memory (`GET /api/ps`); None when unknown."""

    @property
    def outstanding(self) -> int:
        """Requests this worker has yet to finish, as far as we know: its scraped queue and running
        requests (which include ours, and other gateways'), but never fewer than our own in flight (the
        scrape may be a few seconds old). Adding the two would count our queued requests twice."""
        scraped = (self.waiting or 0) + (self.running or 0)
        return max(self.in_flight, scraped)


@dataclass(frozen=True, slots=True)
class RequestKey:
    """What a policy may look at in a request."""

    model: str
    """The catalog model the request was routed to."""
    prompt: str = ""
    """The whole conversation serialized in order (role and content of every message), or the
    prompt of a completion; prefix affinity hashes it."""
    session: str | None = None
    """A session or user id, for session affinity; None when the client sent none."""
    body: Mapping[str, Any] | None = field(default=None, compare=False)
    """The request body (a reference, never copied), for the precise prefix scorer, which tokenizes its
    `messages` or `prompt` the way the worker will; None when unknown."""


def usable(candidates: Sequence[WorkerLoad]) -> list[WorkerLoad]:
    """The candidates that may take traffic: weight 0 is the operator's way to drain a worker."""
    return [c for c in candidates if c.weight > 0]
