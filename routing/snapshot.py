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
    own_at_scrape: int = 0
    """The gateway's own in-flight requests to this worker when `waiting` and `running` were read: the
    part of the scraped load that is ours, so the rest is other gateways' (see `others`)."""
    scraped_at: float | None = None
    """When `waiting` and `running` were read, on the clock of `now`; None: treat them as fresh."""
    prefilling: int = 0
    """Of `in_flight`, the requests that have not had their first token yet (exact): those still waiting
    for, or in, their prefill. A whole (not streamed) answer counts until it arrives."""
    own_prefilling_at_scrape: int = 0
    """Our `prefilling` when `waiting` was read: the part of the scraped queue that may be ours."""

    def _fresh(self, now: float, fade_s: float) -> float:
        """How much the scrape still counts: 1 when just read (or of unknown age), 0 once `fade_s` old."""
        if self.scraped_at is None:
            return 1.0
        return min(1.0, max(0.0, 1.0 - (now - self.scraped_at) / fade_s))

    def others(self, now: float, fade_s: float) -> float:
        """Other gateways' requests on this worker: the scraped queue and running requests net of ours at
        the time (never below 0: ours may not have reached the worker yet, or may have ended there but not
        here), weighing less as the scrape ages, nothing once it is `fade_s` old."""
        theirs = (self.waiting or 0) + (self.running or 0) - self.own_at_scrape
        return theirs * self._fresh(now, fade_s) if theirs > 0 else 0.0

    def queued(self, now: float, fade_s: float) -> float:
        """The requests this worker has yet to start answering: ours still prefilling (exact), plus other
        gateways' waiting, from the scrape net of our prefilling then, faded like `others`. A new prompt
        waits behind these (vLLM schedules prefills first come, first served), not behind the decodes."""
        theirs = (self.waiting or 0) - self.own_prefilling_at_scrape
        return self.prefilling + (theirs * self._fresh(now, fade_s) if theirs > 0 else 0.0)

    def load(self, now: float, fade_s: float) -> float:
        """The requests this worker has yet to finish, as far as we know: ours, exact and up to date, plus
        other gateways' (`others`). Not the larger of ours and the scraped count: a scrape up to a
        second old hides every change to ours until ours passes it, and a burst herds (tests/unit/
        test_load_estimate.py)."""
        return self.in_flight + self.others(now, fade_s)


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
