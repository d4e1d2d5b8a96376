"""What the overhead suite measured per target, and each gateway target's summary against its goals."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.harness import configs
from benchmarks.harness.interference import Interference
from benchmarks.load.wrk import WrkResult


@dataclass(slots=True)
class TargetResult:
    key: str
    """`direct`; the bare configuration under an ASGI server (`serve`, `uvicorn`, `granian`); another
    configuration's name (under `serve`); `<config>-w<N>` for N server processes."""
    name: str
    url: str
    config: str = "bare"
    """The gateway configuration (benchmarks/harness/configs.py; `bare` for direct too)."""
    server: str | None = None
    """The ASGI server the gateway ran under (None for nginx)."""
    workers: int = 1
    """Server processes (GATEWAY_WORKERS)."""
    runs: list[WrkResult] = field(default_factory=list)
    interference: dict[int, Interference] = field(default_factory=dict)
    """What else ran on the machine during each run, by concurrency."""
    cpu: dict[int, dict[str, float]] = field(default_factory=dict)
    """% of one core used by the gateway, the upstream, Redis and wrk during each run, by concurrency."""
    attempts: dict[int, int] = field(default_factory=dict)
    """Runs made at each concurrency (noisy ones are measured again; the quietest is kept)."""
    peak_rss_mb: float | None = None
    """Sum of VmHWM over the server's process tree, sampled after its last run (None for nginx)."""
    log_lines: int = 0
    """Lines the server wrote to its log during the runs (expected: none at LOG_LEVEL=warning, one per
    request with the request log line on)."""
    requests_sent: int = 0
    """Requests wrk completed against this target, warm-up and retried attempts included."""
    redis_commands: dict[str, int] = field(default_factory=dict)
    """Commands Redis ran while this target was measured, by name (configurations with Redis)."""
    cache_lookups: dict[str, int] = field(default_factory=dict)
    """The gateway's cache lookups while it was measured, by result (hit, miss, coalesced, bypass)."""
    problems: list[str] = field(default_factory=list)
    """What did not fit the configuration during the runs (cache results, log lines)."""
    open_loop: list[dict[str, object]] = field(default_factory=list)
    """Fixed-rate runs (benchmarks/load/open_loop.py figures, plus `cpu`)."""
    profile: dict[str, object] | None = None
    """Where the CPU went under load (benchmarks/harness/profiling.py), when profiled."""

    @property
    def redis_scripts_per_request(self) -> float | None:
        """Scripts (EVALSHA, EVAL) the gateway ran in Redis per request: its round trips for limits."""
        if not self.redis_commands or not self.requests_sent:
            return None
        scripts = sum(self.redis_commands.get(name, 0) for name in ("evalsha", "eval", "evalsha_ro", "eval_ro"))
        return scripts / self.requests_sent

    @property
    def redis_commands_per_request(self) -> float | None:
        """Every command Redis ran per request, those inside the scripts included."""
        if not self.redis_commands or not self.requests_sent:
            return None
        return sum(self.redis_commands.values()) / self.requests_sent

    def run_at(self, concurrency: int) -> WrkResult | None:
        return next((run for run in self.runs if run.concurrency == concurrency), None)

    @property
    def max_requests_per_s(self) -> float:
        return max((run.requests_per_s for run in self.runs), default=0.0)

    @property
    def error_count(self) -> int:
        return sum(run.error_count for run in self.runs)


@dataclass(frozen=True, slots=True)
class GatewaySummary:
    key: str
    config: str
    workers: int
    overhead_c1_p50_ms: float | None
    overhead_c1_p99_ms: float | None
    throughput_ratio: dict[int, float]
    """Gateway requests/s over direct requests/s, per concurrency."""
    max_requests_per_s: float
    peak_rss_mb: float | None
    errors: int
    goal: configs.Goal | None
    """The configuration's goals (one process); None for several processes or no goal."""
    meets_throughput: bool | None
    meets_overhead: bool | None
    meets_overhead_p99: bool | None

    @property
    def missed(self) -> list[str]:
        """The goals not met, in words."""
        if self.goal is None:
            return []
        out = []
        if self.meets_throughput is False:
            out.append(f"{self.max_requests_per_s:,.0f} req/s < {self.goal.min_requests_per_s:,.0f}")
        if self.meets_overhead is False:
            out.append(f"overhead p50 {self.overhead_c1_p50_ms} ms > {self.goal.max_overhead_p50_ms}")
        if self.meets_overhead_p99 is False:
            out.append(f"overhead p99 {self.overhead_c1_p99_ms} ms > {self.goal.max_overhead_p99_ms}")
        return out


def _at_most(value: float | None, limit: float | None, clean: bool) -> bool | None:
    if limit is None or value is None:
        return None
    return clean and value <= limit


def summarize(direct: TargetResult, gateway: TargetResult) -> GatewaySummary:
    base, own = direct.run_at(1), gateway.run_at(1)
    p50 = p99 = None
    if base is not None and own is not None:
        p50, p99 = round(own.p50_ms - base.p50_ms, 4), round(own.p99_ms - base.p99_ms, 4)
    ratios = {}
    for run in gateway.runs:
        ref = direct.run_at(run.concurrency)
        if ref is not None and ref.requests_per_s > 0:
            ratios[run.concurrency] = round(run.requests_per_s / ref.requests_per_s, 4)
    clean = gateway.error_count == 0 and not gateway.problems
    config = configs.CONFIGS.get(gateway.config)
    goal = config.goal if config is not None and gateway.workers == 1 else None
    return GatewaySummary(
        key=gateway.key,
        config=gateway.config,
        workers=gateway.workers,
        overhead_c1_p50_ms=p50,
        overhead_c1_p99_ms=p99,
        throughput_ratio=ratios,
        max_requests_per_s=gateway.max_requests_per_s,
        peak_rss_mb=gateway.peak_rss_mb,
        errors=gateway.error_count,
        goal=goal,
        meets_throughput=None if goal is None else clean and gateway.max_requests_per_s >= goal.min_requests_per_s,
        meets_overhead=_at_most(p50, None if goal is None else goal.max_overhead_p50_ms, clean),
        meets_overhead_p99=_at_most(p99, None if goal is None else goal.max_overhead_p99_ms, clean),
    )
