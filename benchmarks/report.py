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
PACKAGES = ("llm-gateway", "litestar", "aiohttp", "uvicorn", "granian", "uvloop", "httptools", "msgspec")


@dataclass(slots=True)
class TargetResult:
    key: str
    """`direct`, or the ASGI server the gateway ran under: `serve`, `uvicorn`, `granian`."""
    name: str
    url: str
    runs: list[WrkResult] = field(default_factory=list)
    interference: dict[int, Interference] = field(default_factory=dict)
    """What else ran on the machine during each run, by concurrency."""
    attempts: dict[int, int] = field(default_factory=dict)
    """Runs made at each concurrency (noisy ones are measured again; the quietest is kept)."""
    peak_rss_mb: float | None = None
    """Sum of VmHWM over the server's process tree, sampled after its last run (None for nginx)."""
    log_lines: int = 0
    """Lines the server wrote to its log at LOG_LEVEL=warning (expected: none)."""

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
    overhead_c1_p50_ms: float | None
    overhead_c1_p99_ms: float | None
    throughput_ratio: dict[int, float]
    """Gateway requests/s over direct requests/s, per concurrency."""
    max_requests_per_s: float
    peak_rss_mb: float | None
    errors: int
    meets_throughput: bool
    meets_overhead: bool | None


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
    return GatewaySummary(
        key=gateway.key,
        overhead_c1_p50_ms=None if p50 is None else round(p50, 4),
        overhead_c1_p99_ms=None if p99 is None else round(p99, 4),
        throughput_ratio=ratios,
        max_requests_per_s=gateway.max_requests_per_s,
        peak_rss_mb=gateway.peak_rss_mb,
        errors=gateway.error_count,
        meets_throughput=clean and gateway.max_requests_per_s >= TARGET_RPS,
        meets_overhead=None if p50 is None else clean and p50 <= TARGET_OVERHEAD_MS,
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


def machine_info(nginx: str, wrk: str) -> dict[str, object]:
    """Where and with what the figures were measured (blocking: call it outside the event loop)."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _package_version(name) for name in PACKAGES},
        "nginx": _command_version([nginx, "-v"]),
        "wrk": _command_version([wrk, "-v"]),
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
        "schema": 1,
        "date": started.isoformat().replace("+00:00", "Z"),
        "options": options,
        "machine": machine,
        "goals": {"min_requests_per_s": TARGET_RPS, "max_overhead_c1_p50_ms": TARGET_OVERHEAD_MS},
        "targets": [
            {**dataclasses.asdict(target), "max_requests_per_s": target.max_requests_per_s} for target in targets
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
    names = {target.key: target.name for target in targets}
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
        ("load average at start", str(machine.get("load_average_at_start"))),
        (
            "run",
            f"{options.get('duration_s')} s per point, {options.get('warmup_s')} s warm-up per target, "
            f"noisy above {options.get('noisy_pct')}% of a core, up to {options.get('retries')} retries, "
            f"up to {options.get('quiet_wait_s')} s wait for quiet",
        ),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)])


METHOD = f"""\
## Goals (from the issue)
With one gateway process: at least {TARGET_RPS:,.0f} requests/s, and per-request overhead at
concurrency 1 at most {TARGET_OVERHEAD_MS} ms.

## Method
- **Upstream**: nginx (one worker, access log off) answering `POST /v1/chat/completions` with a fixed
  chat completion (`benchmarks/nginx.conf.template`), the fastest possible worker, so every millisecond
  above it is the gateway's.
- **Gateway**: one process, catalog with a single `openai` worker pointing at that nginx, `LOG_LEVEL=warning`.
  The default target is `llm-gateway serve`; with `--servers` the same ASGI app (`gateway.asgi:app`)
  also runs under uvicorn (uvloop, httptools) and granian (uvloop), so the ASGI server choice is measured.
- **Load**: `wrk -t1 -cN -dDs --latency -s benchmarks/chat.lua URL` for N in 1, 8, 32, after a short
  warm-up; `chat.lua` POSTs `{{"model":"bench","messages":[...]}}` with a bearer key and prints
  requests/s, p50/p90/p99 and the errors (socket errors, timeouts, non-2xx answers) as one JSON line.
- **Overhead** = gateway p50 - direct p50 at concurrency 1 (no queueing); **ratio** = gateway
  requests/s ÷ direct requests/s at the same concurrency. Peak RSS is the sum of `VmHWM` over the
  server's process tree after its runs.
- Load generator, upstream and gateway share the machine's cores, so absolute figures move from run
  to run: compare targets within one run. A point with errors does not count towards the goals.
  *other CPU %* is the CPU time that processes outside the benchmark used during a point (% of one
  core) and *steal %* the hypervisor's steal time. Each point waits (20 s at most) for a quiet
  second first; a point where they add up to more than 25% of a core is measured again (twice at
  most) and the quietest attempt kept; a point still noisy after that is shown, but its figures are
  unreliable.

Run it with `make bench` (or `.venv/bin/python -m benchmarks.overhead [--servers] [--duration 8]
[--concurrency 1,8,32]`; `--quick` is a 2 s smoke check that writes no files). Each run writes
`benchmarks/results/overhead-<UTC time>.json` and regenerates this file.
"""


def _noisy_pct(options: dict[str, object]) -> float | None:
    value = options.get("noisy_pct")
    return float(value) if isinstance(value, int | float) else None


_SECTION = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", re.DOTALL)


def write_markdown(text: str) -> None:
    """Replace RESULTS.md with `text`, keeping the sections other benchmarks own.

    Those sit between `<!-- name:start -->` and `<!-- name:end -->` (the routing benchmark's, for one)
    and are carried over, unchanged, after the overhead figures.
    """
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    kept = [match.group(0) for match in _SECTION.finditer(old)]
    RESULTS_MD.write_text("\n\n".join([text.rstrip("\n"), *kept]) + "\n")


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
        f"### Gateway against the goals\n\n{summary_table(targets, summaries)}\n\n"
        f"### All points\n\n{results_table(targets, _noisy_pct(options))}\n{raw}"
    )
