"""Which policy for which fleet, from a routing run's own figures: for each kind of fleet (the workloads
that stand for it) and each gateway replica count, the policy with the most output tokens/s (among
those within `NEAR` of the most, the one with the lowest p90 TTFT), what it gains over round robin,
how far it stays from the ceiling; and whether the gateway's default policy is at least as good as round
robin everywhere. docs/configuration.md's policy recommendation cites this paragraph."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.routing.lookup import layouts, policies

FLEETS = (
    ("Requests sharing long system prompts", ("uniform", "skewed")),
    ("Multi-turn chat", ("conversations", "conversations-anonymous")),
    ("Unrelated prompts of mixed lengths", ("mixed",)),
    ("Long replies (decode-bound)", ("long-outputs",)),
    ("New prefixes arriving in bursts", ("burst",)),
)
NEAR = 0.05
"""Tokens/s within 5% of the best count as a tie (about the run-to-run noise on the box); p90 TTFT decides."""
DEFAULT_POLICY = "least_outstanding"
"""The gateway's default for every model (`routing/catalog.py`)."""
BASELINE = "round_robin"


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def _scores(report: dict[str, Any], kinds: list[str], replicas: int) -> dict[str, tuple[float, float]]:
    """Per policy that ran on every one of `kinds` run behind `replicas` gateways: (tokens/s, p90 TTFT),
    each a geometric mean over those workloads of its ratio to round robin's."""
    kinds = [kind for kind in kinds if policies(report, kind, replicas)]
    by_policy: dict[str, list[tuple[float, float]]] = {}
    for kind in kinds:
        runs = {r["policy"]: r for r in policies(report, kind, replicas) if r["errors"] == 0}
        base = runs.get(BASELINE)
        if base is None:
            return {}
        for name, run in runs.items():
            by_policy.setdefault(name, []).append((run["output_tokens_per_s"] / base["output_tokens_per_s"],
                                                   run["ttft_p90_ms"] / base["ttft_p90_ms"]))
    return {name: (_geomean([t for t, _ in ratios]), _geomean([p for _, p in ratios]))
            for name, ratios in by_policy.items() if len(ratios) == len(kinds)}


def best_policy(scores: dict[str, tuple[float, float]]) -> str | None:
    """The most tokens/s; among the policies within `NEAR` of it, the lowest p90 TTFT."""
    if not scores:
        return None
    top = max(tokens for tokens, _ in scores.values())
    near = [name for name, (tokens, _) in scores.items() if tokens >= top * (1 - NEAR)]
    return min(near, key=lambda name: scores[name][1])


def _of_ceiling(report: dict[str, Any], kinds: list[str], replicas: int, policy: str) -> str:
    shares = [r["output_tokens_per_s"] / report["ideal"][kind]["tokens_per_s"]
              for kind in kinds for r in policies(report, kind, replicas)
              if r["policy"] == policy and report.get("ideal", {}).get(kind)]
    return f"{min(shares):.0%}-{max(shares):.0%}" if len(shares) > 1 else f"{shares[0]:.0%}" if shares else "?"


def _fleet_line(report: dict[str, Any], title: str, kinds: list[str], counts: list[int]) -> str | None:
    parts = []
    for replicas in counts:
        scores = _scores(report, kinds, replicas)
        best = best_policy(scores)
        if best is None:
            continue
        tokens, ttft = scores[best]
        behind = "one gateway" if replicas == 1 else f"{replicas} replicas"
        gain = ("" if best == BASELINE else
                f" ({tokens:.2f}x round robin's tokens/s, p90 TTFT {ttft:.2f}x round robin's)")
        ran = [kind for kind in kinds if policies(report, kind, replicas)]
        parts.append(f"behind {behind} ({', '.join(ran)}), **{best}**{gain}, at "
                     f"{_of_ceiling(report, ran, replicas, best)} of the ceiling's tokens/s")
    if not parts:
        return None
    return f"- **{title}**: " + "; ".join(parts) + "."


def _default_line(report: dict[str, Any]) -> str | None:
    """Where the default policy does worse than round robin on tokens/s or p90 TTFT (beyond the noise)."""
    checked, losses = 0, []
    for kind, replicas in layouts(report):
        runs = {r["policy"]: r for r in policies(report, kind, replicas)}
        default, base = runs.get(DEFAULT_POLICY), runs.get(BASELINE)
        if default is None or base is None:
            continue
        checked += 1
        tokens = default["output_tokens_per_s"] / base["output_tokens_per_s"]
        ttft = default["ttft_p90_ms"] / base["ttft_p90_ms"]
        if tokens < 1 - NEAR or ttft > 1 + NEAR:
            losses.append(f"{kind} x{replicas} ({tokens:.2f}x tokens/s, {ttft:.2f}x p90 TTFT)")
    if not checked:
        return None
    if not losses:
        return (f"- **The default ({DEFAULT_POLICY})** was within {NEAR:.0%} of round robin or better on tokens/s and "
                f"p90 TTFT on all {checked} workload and replica layouts.")
    return (f"- **The default ({DEFAULT_POLICY})** did worse than round robin (by more than {NEAR:.0%}) on "
            f"{len(losses)} of {checked} layouts: {'; '.join(losses)}.")


def recommend(report: dict[str, Any]) -> list[str]:
    """The `### Which policy for which fleet` paragraph, from the report's runs."""
    counts = sorted({replicas for _, replicas in layouts(report)})
    lines = [line for title, kinds in FLEETS if (line := _fleet_line(report, title, list(kinds), counts)) is not None]
    default = _default_line(report)
    if default is not None:
        lines.append(default)
    if not lines:
        return []
    return ["### Which policy for which fleet", "",
            "The policy with the most output tokens/s on the workloads that stand for each kind of fleet (within "
            f"{NEAR:.0%}, the lower p90 TTFT), each figure a geometric mean of its ratios to round robin's:", "",
            *lines]
