"""The soak's measures against their thresholds: reliability figure 15 (memory drift, file descriptors,
p99 drift, Redis keys without a TTL, /metrics against the clients, x-request-id) and, for the leak run,
issue 11's RSS back near its warm level."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.soak.figures import FD_RETURN_MARGIN

MAX_DRIFT_PCT_PER_H = 5.0
MAX_P99_DRIFT_PCT = 10.0
MAX_RSS_RETURN_PCT = 10.0
FD_THRESHOLD = (
    f"idle after the load ≤ idle before it + {FD_RETURN_MARGIN}, the gateway's Redis connections "
    "(pools: bounded, kept open) aside; under load they follow the open connections"
)



@dataclass(slots=True)
class Verdict:
    measure: str
    value: float | int | str | None
    unit: str
    threshold: str
    met: bool | None
    """None: not enough samples to tell."""


def verdicts(figures: dict[str, object], duration_label: str, leak: bool) -> list[Verdict]:
    """The figure-15 measures, each against its threshold; a leak run (issue 11) adds RSS after the idle."""

    def num(name: str) -> float | None:
        value = figures.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    back = num("rss_after_idle_vs_warm_pct")
    returned = Verdict(
        f"RSS after the load and an idle vs warm ({duration_label})",
        back,
        "%",
        f"≤ +{MAX_RSS_RETURN_PCT:g} %",
        None if back is None else back <= MAX_RSS_RETURN_PCT,
    )
    drift, p99 = num("memory_drift_pct_per_h"), num("p99_drift_pct")
    fd_stable = figures.get("fd_stable")
    no_ttl, metric_diff = figures.get("redis_keys_without_ttl_max"), figures.get("metrics_mismatch")
    missing = figures.get("responses_without_request_id")
    soak = [
        Verdict(
            f"memory drift ({duration_label})",
            drift,
            "%/h",
            f"< {MAX_DRIFT_PCT_PER_H:g} %/h",
            None if drift is None else drift < MAX_DRIFT_PCT_PER_H,
        ),
        Verdict(
            f"open file descriptors ({duration_label})",
            (
                f"{figures.get('fd_min')}-{figures.get('fd_max')} under load; idle {figures.get('fd_before_load')} "
                f"before, {figures.get('fd_after_idle')} after (Redis pool {figures.get('redis_pool_before_load')}"
                f" -> {figures.get('redis_pool_after_idle')})"
            ),
            "",
            FD_THRESHOLD,
            fd_stable if isinstance(fd_stable, bool) else None,
        ),
        Verdict(
            f"p99 drift, last 10 % vs first 10 % after warm-up ({duration_label})",
            p99,
            "%",
            f"< {MAX_P99_DRIFT_PCT:g} %",
            None if p99 is None else p99 < MAX_P99_DRIFT_PCT,
        ),
        Verdict(
            f"Redis keys without a TTL ({duration_label})",
            no_ttl if isinstance(no_ttl, int) else None,
            "keys",
            "0 (API-key records llmgw:key:*, llmgw:keyid:* are persistent by design: reported apart)",
            no_ttl == 0 if isinstance(no_ttl, int) else None,
        ),
        Verdict(
            f"/metrics requests by status class vs what clients saw: differences ({duration_label})",
            metric_diff if isinstance(metric_diff, int) else None,
            "requests",
            "0",
            metric_diff == 0 if isinstance(metric_diff, int) else None,
        ),
        Verdict(
            f"responses without x-request-id ({duration_label})",
            missing if isinstance(missing, int) else None,
            "responses",
            "0",
            missing == 0 if isinstance(missing, int) else None,
        ),
    ]
    return [returned, *soak] if leak else soak


