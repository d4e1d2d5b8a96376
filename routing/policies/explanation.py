"""Why a policy would choose a worker: per-candidate figures and the rule that decided, for operators
(`POST /v1/routing/explain`). Computed apart from `choose`, without its side effects (turns taken, a
prefix recorded), so explaining a request never changes where the next one goes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from routing.snapshot import WorkerLoad


@dataclass(frozen=True, slots=True)
class CandidateFigures:
    """One candidate as the policy weighed it."""

    name: str
    in_flight: int
    """The gateway's own requests on the worker (exact)."""
    others: float
    """Other gateways' requests, from the last scrape net of ours, faded by its age (`WorkerLoad.others`)."""
    load: float
    """The estimate the policy compared: `in_flight + others`."""
    queued: float = 0.0
    """The requests the worker has yet to start answering (`WorkerLoad.queued`): least_outstanding
    compares these first."""
    score: float | None = None
    """What the policy ranks by (see `Explanation.score_means`); None when it ranks by nothing but turns."""
    cached: float | None = None
    """prefix_affinity: the share of the prompt's leading blocks the worker is believed to hold."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """The decision for one request: who, why, and every candidate's figures."""

    chosen: str | None
    reason: str
    score_means: str
    candidates: tuple[CandidateFigures, ...]


def figures(candidates: Sequence[WorkerLoad], now: float, fade_s: float, *,
            scores: Mapping[str, float] | None = None,
            cached: Mapping[str, float] | None = None) -> tuple[CandidateFigures, ...]:
    """The figures of every candidate; `scores` defaults to the load itself."""
    rows = []
    for c in candidates:
        others = c.others(now, fade_s)
        load = c.in_flight + others
        rows.append(CandidateFigures(
            name=c.name, in_flight=c.in_flight, others=others, load=load, queued=c.queued(now, fade_s),
            score=load if scores is None else scores.get(c.name),
            cached=None if cached is None else cached.get(c.name)))
    return tuple(rows)
