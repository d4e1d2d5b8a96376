"""Whether a surface's stream keeps the worker's pace: the gaps between consecutive content events as
the client saw them, their p50 and p99, and the share of bunched gaps (pure; the streams: client.py).

A gateway that passes each chunk on as it comes shows gaps at the simulator's pace (20 ms); one that
holds chunks back and sends them together shows gaps near zero beside gaps of twice the pace."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

BUNCHED_MS = 5.0
"""A gap shorter than this between two content events means they were sent together."""


@dataclass(slots=True)
class Pacing:
    """One surface's streams at the paced simulator."""

    surface: str
    streams: int
    errors: int
    events_mean: float
    """Content events per stream (the simulator sends 32 chunks)."""
    gaps: int
    gap_p50_ms: float
    gap_p99_ms: float
    gap_max_ms: float
    bunched_pct: float
    ttft_p50_ms: float
    first_error: str = ""


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile of `values` (0.0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def gaps_ms(event_times: list[float]) -> list[float]:
    """The gaps between consecutive events of one stream (times in seconds), in milliseconds."""
    return [(later - earlier) * 1000 for earlier, later in itertools.pairwise(event_times)]


def bunched_pct(gaps: list[float]) -> float:
    """The share of gaps shorter than `BUNCHED_MS`, in %."""
    return 100 * sum(gap < BUNCHED_MS for gap in gaps) / len(gaps) if gaps else 0.0


def summarize(surface: str, streams: list[tuple[float, list[float]]], errors: list[str]) -> Pacing:
    """A surface's pacing from its streams: (request start, content event times) each, in seconds."""
    gaps = [gap for _, times in streams for gap in gaps_ms(times)]
    ttfts = [(times[0] - started) * 1000 for started, times in streams if times]
    return Pacing(
        surface=surface,
        streams=len(streams) + len(errors),
        errors=len(errors),
        events_mean=round(sum(len(times) for _, times in streams) / len(streams), 1) if streams else 0.0,
        gaps=len(gaps),
        gap_p50_ms=round(percentile(gaps, 0.5), 2),
        gap_p99_ms=round(percentile(gaps, 0.99), 2),
        gap_max_ms=round(max(gaps), 1) if gaps else 0.0,
        bunched_pct=round(bunched_pct(gaps), 1),
        ttft_p50_ms=round(percentile(ttfts, 0.5), 2),
        first_error=errors[0][:300] if errors else "",
    )
