"""The overhead benchmark's results: what was measured per target, the summaries against the goals, the
machine, the JSON file and RESULTS.md (tables in report_tables.py, the method's text in report_method.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from benchmarks import gateway_configs, report_method, report_tables
from benchmarks.interference import Interference
from benchmarks.wrk import WrkResult

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
PACKAGES = ("llm-gateway", "litestar", "aiohttp", "uvicorn", "granian", "uvloop", "httptools", "msgspec")


@dataclass(slots=True)
class TargetResult:
    key: str
    """`direct`; the bare configuration under an ASGI server (`serve`, `uvicorn`, `granian`); another
    configuration's name (under `serve`); `<config>-w<N>` for N server processes."""
    name: str
    url: str
    config: str = "bare"
    """The gateway configuration (benchmarks/gateway_configs.py; `bare` for direct too)."""
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
    """Fixed-rate runs (benchmarks/open_loop.py figures, plus `cpu`)."""
    profile: dict[str, object] | None = None
    """Where the CPU went under load (benchmarks/profiling.py), when profiled."""

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
    goal: gateway_configs.Goal | None
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
    config = gateway_configs.CONFIGS.get(gateway.config)
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


def _command_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].split("Copyright")[0].strip() if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info(nginx: str, wrk: str, redis: str | None = None) -> dict[str, object]:
    """Where and with what the figures were measured (blocking: call it outside the event loop)."""
    extra = {} if redis is None else {"redis": _command_version([redis, "--version"])}
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _package_version(name) for name in PACKAGES},
        "nginx": _command_version([nginx, "-v"]),
        "wrk": _command_version([wrk, "-v"]),
        **extra,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def stamp(started: datetime) -> str:
    return started.strftime("%Y%m%dT%H%M%SZ")


def to_json(
    started: datetime,
    options: dict[str, object],
    machine: dict[str, object],
    targets: list[TargetResult],
    summaries: list[GatewaySummary],
) -> dict[str, object]:
    return {
        "schema": 3,
        "date": started.isoformat().replace("+00:00", "Z"),
        "options": options,
        "machine": machine,
        "configs": {
            name: {
                **dataclasses.asdict(config),
                "goal": None if config.goal is None else dataclasses.asdict(config.goal),
            }
            for name, config in gateway_configs.CONFIGS.items()
        },
        "targets": [
            {
                **dataclasses.asdict(target),
                "max_requests_per_s": target.max_requests_per_s,
                "redis_scripts_per_request": target.redis_scripts_per_request,
                "redis_commands_per_request": target.redis_commands_per_request,
            }
            for target in targets
        ],
        "summary": [{**dataclasses.asdict(summary), "missed": summary.missed} for summary in summaries],
    }


def write_json(data: dict[str, object], started: datetime) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"overhead-{stamp(started)}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


_SECTION = re.compile(r"^<!-- ([\w-]+):start -->$.*?^<!-- \1:end -->$", re.DOTALL | re.MULTILINE)
"""A section another benchmark owns: its markers alone on their lines (so the mention of the markers in
this file's own header, mid-line, is not taken for one)."""


def write_markdown(text: str) -> None:
    """Replace RESULTS.md with `text`, keeping the sections other benchmarks own.

    Those sit between `<!-- name:start -->` and `<!-- name:end -->` lines (the routing benchmark's, for
    one) and are carried over, unchanged, after the overhead figures.
    """
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    kept = [match.group(0) for match in _SECTION.finditer(old)]
    RESULTS_MD.write_text("\n\n".join([text.rstrip("\n"), *kept]) + "\n")


def _noisy_pct(options: dict[str, object]) -> float | None:
    value = options.get("noisy_pct")
    return float(value) if isinstance(value, int | float) else None


def render_markdown(
    started: datetime,
    options: dict[str, object],
    machine: dict[str, object],
    targets: list[TargetResult],
    summaries: list[GatewaySummary],
    json_path: Path | None,
) -> str:
    raw = f"\nRaw figures: `{json_path.relative_to(HERE.parent)}`.\n" if json_path is not None else ""
    sections = [
        "# Gateway overhead benchmark\n\n"
        "Generated by `python -m benchmarks.overhead`; do not edit by hand (the text lives in "
        "`benchmarks/report*.py`). Sections between `<!-- name:start -->` and `<!-- name:end -->` markers "
        "belong to other benchmarks and are kept as they are.\n",
        report_method.goals(sorted({t.config for t in targets if t.key != "direct"})),
        report_tables.headline(targets, summaries),
        report_method.METHOD,
        f"## Latest run\n\n{report_tables.machine_table(started, machine, options)}\n",
        f"### Gateway against the goals (bare, per ASGI server)\n\n{report_tables.summary_table(targets, summaries)}\n",
        report_tables.configs_section(targets, summaries),
        report_tables.scaling_section(targets),
        report_tables.open_loop_section(targets),
        report_tables.profiles_section(targets, summaries),
        report_tables.failures(targets),
        f"### All points\n\n{report_tables.results_table(targets, _noisy_pct(options))}\n{raw}",
    ]
    return "\n".join(section for section in sections if section)
