"""This gateway beside LiteLLM's proxy and Portkey's gateway, in one run on the same nginx upstream.

    .venv/bin/python -m benchmarks.peers_bench [--peers litellm,portkey] [--duration 8]
        [--concurrency 1,8,32] [--quiet-wait 600] [--quick]

Installs the peers (cached outside the repository, see benchmarks/peers.py), waits for the machine to be
quiet, starts nginx (fixed chat completion) and then, one at a time, this gateway (`llm-gateway serve`,
open mode), LiteLLM's proxy and Portkey's gateway in front of it; drives each with wrk at each
concurrency; writes benchmarks/results/peers-<UTC>.json and the `peers` section of benchmarks/RESULTS.md.
A peer that cannot be installed or started is recorded as such and the run goes on without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks import cli, gateway_server, interference, nginx_upstream, peers, peers_gateway, procs, wrk
from benchmarks.workloads import new_nonce

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
SECTION_START = "<!-- peers:start -->"
SECTION_END = "<!-- peers:end -->"
STREAMING_PART = "<!-- peers-streaming -->"
"""Inside the peers section: the throughput part (this script) comes before it, the streaming part after."""

QUIET_LOAD = 1.0
BUSY_PATTERN = r"pytest|benchmarks\."
NOISY_PCT = 25.0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- a quiet machine -------------------------------------------------------------------------------


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        fields = procs.stat_fields(pid)
        if fields is None:
            break
        pid = int(fields[1])
    return pids


def busy_processes() -> list[str]:
    """Test suites and other benchmarks running on the machine (not this run or what started it)."""
    try:
        done = subprocess.run(["pgrep", "-fa", BUSY_PATTERN], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    mine = _ancestors() | set(procs.process_tree(os.getpid()))
    lines = []
    for line in done.stdout.splitlines():
        pid, _, command = line.partition(" ")
        if pid.isdigit() and int(pid) not in mine:
            lines.append(f"{pid} {command[:120]}")
    return lines


@dataclass(slots=True)
class Quiet:
    """How the wait for a quiet machine went before a target was measured."""

    quiet: bool
    waited_s: float
    load_1m: float
    busy: list[str] = field(default_factory=list)


class QuietBudget:
    """Waits for load < QUIET_LOAD and no test suite or other benchmark, up to `total_s` over the run."""

    def __init__(self, total_s: float) -> None:
        self.left_s = total_s

    async def wait(self) -> Quiet:
        started = time.monotonic()
        said = False
        while True:
            load = os.getloadavg()[0]
            busy = await asyncio.to_thread(busy_processes)
            if load < QUIET_LOAD and not busy:
                waited = time.monotonic() - started
                self.left_s -= waited
                return Quiet(True, round(waited, 1), round(load, 2))
            waited = time.monotonic() - started
            if waited >= self.left_s:
                self.left_s = 0.0
                say(f"    machine still busy (load {load:.2f}, {len(busy)} test/benchmark processes): measuring, noisy")
                return Quiet(False, round(waited, 1), round(load, 2), busy[:5])
            if not said:
                say(
                    f"    waiting up to {self.left_s:.0f} s for a quiet machine "
                    f"(load {load:.2f}, {len(busy)} test/benchmark processes)"
                )
                said = True
            await asyncio.sleep(5.0)


# --- measuring -------------------------------------------------------------------------------------


def write_lua(workdir: Path, name: str, headers: dict[str, str]) -> Path:
    """A wrk script: chat.lua with these request headers set (replacing its Authorization)."""
    lines = [f"dofile({json.dumps(str(wrk.SCRIPT))})"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = workdir / f"chat-{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(slots=True)
class Run:
    concurrency: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    error_count: int
    other_cpu_pct: float
    steal_pct: float


@dataclass(slots=True)
class Target:
    key: str
    name: str
    version: str = ""
    url: str = ""
    status: str = "ok"
    """`ok`, or why it was not measured (install or start failure)."""
    runs: list[Run] = field(default_factory=list)
    peak_rss_mb: float | None = None
    quiet: Quiet | None = None
    notes: list[str] = field(default_factory=list)

    def run_at(self, concurrency: int) -> Run | None:
        return next((run for run in self.runs if run.concurrency == concurrency), None)

    @property
    def noisy(self) -> bool:
        loud = any(run.other_cpu_pct + run.steal_pct > NOISY_PCT for run in self.runs)
        return loud or (self.quiet is not None and not self.quiet.quiet)


async def measure(
    target: Target, script: Path, concurrency: list[int], duration_s: int, warmup_s: int, budget: QuietBudget
) -> None:
    target.quiet = await budget.wait()
    if warmup_s:
        warm = await wrk.run(target.url, max(concurrency), warmup_s, script=script, script_args=[new_nonce()])
        if warm.error_count:
            say(f"  {target.name} warm-up: errors {warm.errors}")
    for c in concurrency:
        before = await asyncio.to_thread(interference.snapshot)
        result = await wrk.run(target.url, c, duration_s, script=script, script_args=[new_nonce()])
        noise = interference.between(before, await asyncio.to_thread(interference.snapshot))
        run = Run(
            concurrency=c,
            requests=result.requests,
            requests_per_s=round(result.requests_per_s, 1),
            p50_ms=round(result.p50_ms, 3),
            p90_ms=round(result.p90_ms, 3),
            p99_ms=round(result.p99_ms, 3),
            max_ms=round(result.max_ms, 3),
            errors=result.errors,
            error_count=result.error_count,
            other_cpu_pct=round(noise.other_cpu_pct, 1),
            steal_pct=round(noise.steal_pct, 1),
        )
        target.runs.append(run)
        errors = f", errors {result.errors}" if result.error_count else ""
        say(
            f"  {target.name} c={c}: {run.requests_per_s:,.0f} req/s, p50 {run.p50_ms:.3f} ms, "
            f"p90 {run.p90_ms:.3f} ms, p99 {run.p99_ms:.3f} ms{errors} (other CPU {run.other_cpu_pct:.0f}%)"
        )


async def check_chat(url: str, headers: dict[str, str]) -> None:
    """One chat completion must succeed (with a choice) before a target is measured."""
    async with httpx.AsyncClient(trust_env=False, timeout=30.0) as client:
        response = await client.post(url, json=nginx_upstream.CHAT_REQUEST, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"POST {url} answered {response.status_code}: {response.text[:500]}")
    body = response.json()
    if not (isinstance(body, dict) and body.get("choices")):
        raise RuntimeError(f"POST {url} answered without choices: {response.text[:500]}")


# --- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    duration_s: int
    warmup_s: int
    concurrency: list[int]
    peers: list[str]
    quiet_wait_s: float
    quick: bool


async def install_peers(names: list[str]) -> dict[str, str | Exception]:
    """Version installed, or the failure, per peer (installs run one after the other)."""
    out: dict[str, str | Exception] = {}
    for name in names:
        say(f"installing {name} (cached under {peers.PEERS_DIR})")
        try:
            out[name] = await peers.install(name)
        except (peers.PeerUnavailable, OSError) as exc:
            say(f"  {name} unavailable: {exc}")
            out[name] = exc
    return out


async def run_benchmark(options: Options) -> list[Target]:
    installed = await install_peers(options.peers)
    budget = QuietBudget(options.quiet_wait_s)
    targets: list[Target] = []
    children: list[procs.Child] = []
    args = (options.concurrency, options.duration_s, options.warmup_s, budget)
    with tempfile.TemporaryDirectory(prefix="llm-gateway-peers-") as tmp:
        workdir = Path(tmp)
        try:
            nginx_port = procs.free_port()
            say(f"starting nginx on port {nginx_port}")
            children.append(await nginx_upstream.start_nginx(workdir / "nginx", nginx_port))
            upstream = f"http://{procs.LOOPBACK}:{nginx_port}/v1"
            direct = Target("direct", "direct to nginx", url=f"{upstream}/chat/completions")
            await measure(direct, wrk.SCRIPT, *args)
            targets.append(direct)

            catalog = await asyncio.to_thread(gateway_server.write_catalog, workdir, nginx_port)
            for row in peers_gateway.ROWS:
                gateway = Target(row.key, row.name, version=gateway_version())
                targets.append(gateway)

                async def measure_at(url: str, script: Path, gateway: Target = gateway) -> None:
                    gateway.url = url
                    await measure(gateway, script, *args)

                try:
                    peak = await peers_gateway.run_row(row, workdir, catalog, measure_at, say)
                    gateway.peak_rss_mb = round(peak / 2**20, 1)
                except (RuntimeError, OSError, httpx.HTTPError) as exc:
                    gateway.status = f"failed: {exc}"
                    say(f"  {row.key} {gateway.status}")

            async def measure_peer(target: Target, peer: peers.Peer) -> None:
                target.url = peer.chat_url
                try:
                    await check_chat(peer.chat_url, peer.headers)
                    script = await asyncio.to_thread(write_lua, workdir, peer.key, peer.headers)
                    await measure(target, script, *args)
                    target.peak_rss_mb = round(await asyncio.to_thread(procs.peak_rss_bytes, peer.child.pid) / 2**20, 1)
                except (RuntimeError, httpx.HTTPError) as exc:
                    target.status = f"failed: {exc}"
                    say(f"  {peer.key} {target.status}\n{peer.child.log_tail(15)}")

            targets += await peers.measure_each(
                installed, workdir, upstream, lambda key: Target(key, key), measure_peer, say
            )
        finally:
            for child in reversed(children):
                await procs.stop_or_say(child, say)
    return targets


def gateway_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("llm-gateway")
    except metadata.PackageNotFoundError:
        return "source tree"


# --- output ----------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def _get(run: Run | None, name: str) -> float | None:
    if run is None:
        return None
    value: float = getattr(run, name)
    return value


def ratios(targets: list[Target], concurrency: list[int]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per target and concurrency: requests/s ÷ direct's, ÷ this gateway's (open mode, all features on);
    p50 ÷ this gateway's (open mode)."""
    by_key = {t.key: t for t in targets}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for target in targets:
        if target.key == "direct" or not target.runs:
            continue
        per: dict[str, dict[str, float | None]] = {}
        for c in concurrency:
            run = target.run_at(c)
            direct = by_key["direct"].run_at(c)
            gw = by_key["gateway"].run_at(c) if "gateway" in by_key else None
            gw_all = by_key["gateway-all"].run_at(c) if "gateway-all" in by_key else None
            per[str(c)] = {
                "rps_vs_direct": _ratio(_get(run, "requests_per_s"), _get(direct, "requests_per_s")),
                "rps_vs_gateway": _ratio(_get(run, "requests_per_s"), _get(gw, "requests_per_s")),
                "rps_vs_gateway_all": _ratio(_get(run, "requests_per_s"), _get(gw_all, "requests_per_s")),
                "p50_vs_gateway": _ratio(_get(run, "p50_ms"), _get(gw, "p50_ms")),
                "p50_overhead_ms": None if run is None or direct is None else round(run.p50_ms - direct.p50_ms, 3),
            }
        out[target.key] = per
    return out


def tables(targets: list[Target], concurrency: list[int]) -> str:
    rat = ratios(targets, concurrency)
    lines = [
        "| target | version | c | requests/s | p50 ms | p90 ms | p99 ms | errors | ÷ direct (req/s) "
        "| ÷ this gateway, open (req/s) | ÷ this gateway, all features (req/s) | p50 - direct | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        if not t.runs:
            lines.append(f"| {t.name} | {t.version or '-'} | - | {t.status.splitlines()[0][:160]} |" + " |" * 9)
            continue
        for i, run in enumerate(t.runs):
            r = rat.get(t.key, {}).get(str(run.concurrency), {})
            name = f"{t.name}{' (noisy)' if t.noisy else ''}" if i == 0 else ""
            rss = f"{t.peak_rss_mb:.0f} MB" if i == 0 and t.peak_rss_mb is not None else ""
            lines.append(
                f"| {name} | {t.version if i == 0 else ''} | {run.concurrency} | {run.requests_per_s:,.0f} "
                f"| {run.p50_ms:.3f} | {run.p90_ms:.3f} | {run.p99_ms:.3f} | {run.error_count} "
                f"| {_fmt(r.get('rps_vs_direct'), 3)} | {_fmt(r.get('rps_vs_gateway'), 2)} "
                f"| {_fmt(r.get('rps_vs_gateway_all'), 2)} | {_fmt(r.get('p50_overhead_ms'), 3)} | {rss} |"
            )
    return "\n".join(lines)


def machine_info() -> dict[str, object]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable ({exc})"
        text = (done.stdout + done.stderr).strip().splitlines()
        return text[0] if text else "unknown"

    cpu = "unknown"
    with contextlib.suppress(OSError):
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "unknown",
        )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": first_line(["node", "--version"]),
        "nginx": first_line([nginx_upstream.nginx_binary(), "-v"]),
        "wrk": first_line([wrk.wrk_binary(), "-v"]).split("Copyright")[0].strip(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def utc_stamp(started: datetime) -> str:
    return started.strftime("%Y%m%dT%H%M%SZ")


def write_json(kind: str, started: datetime, data: dict[str, object]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{kind}-{utc_stamp(started)}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def update_section(part: str, text: str) -> None:
    """Replace one part (`throughput` or `streaming`) of the peers section of RESULTS.md, keeping the
    other part and everything outside the section; append the section if it is absent."""
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    start, end = old.find(SECTION_START), old.find(SECTION_END)
    if start != -1 and end > start:
        inner = old[start + len(SECTION_START) : end]
        before, after = old[:start], old[end + len(SECTION_END) :]
    else:
        inner, before, after = "", old.rstrip("\n") + ("\n\n" if old.strip() else ""), "\n"
    throughput, sep, streaming = inner.partition(STREAMING_PART)
    if not sep:
        throughput, streaming = inner, ""
    if part == "throughput":
        throughput = "\n" + text.strip("\n") + "\n\n"
    else:
        streaming = "\n\n" + text.strip("\n") + "\n"
    if not throughput.strip():
        throughput = "\n## Peers: not measured yet (`python -m benchmarks.peers_bench`)\n\n"
    section = f"{SECTION_START}{throughput}{STREAMING_PART}{streaming}{SECTION_END}"
    RESULTS_MD.write_text(f"{before}{section}{after}")


def max_rps(targets: list[Target]) -> dict[str, float]:
    return {t.key: max(run.requests_per_s for run in t.runs) for t in targets if t.runs}


def goals_text(targets: list[Target]) -> str:
    """The issue's goal: all features on, at least 2x Portkey's and 20x LiteLLM's requests/s."""
    parts = []
    for goal in peers_gateway.peer_goals(max_rps(targets)):
        ratio, met = goal["ratio"], goal["met"]
        verdict = "not measured" if met is None else ("met" if met else "**missed**")
        parts.append(f"≥ {goal['goal_times']:g}x {goal['peer']}: {'-' if ratio is None else f'{ratio}x'} ({verdict})")
    return (
        "Goal (issue 11), best requests/s of this gateway with all features on over each peer's, in this run: "
        + "; ".join(parts)
        + "."
    )


def markdown(
    started: datetime, machine: dict[str, object], options: Options, targets: list[Target], json_path: Path
) -> str:
    versions = ", ".join(f"{t.key} {t.version or '-'}" for t in targets if t.key != "direct")
    failed = [f"- {t.key}: {t.status}" for t in targets if t.status != "ok"]
    notes = [f"- {t.key}: {note}" for t in targets for note in t.notes]
    noisy = [t.key for t in targets if t.noisy]
    load = machine.get("load_average_at_start")
    parts = [
        "## Peers: this gateway beside LiteLLM and Portkey",
        "",
        f"Generated by `python -m benchmarks.peers_bench` on {started:%Y-%m-%d %H:%M} UTC "
        f"({machine.get('nproc')} cores, {machine.get('cpu_model')}, load at start {load}); "
        f"raw figures in `{json_path.relative_to(HERE.parent)}`. Versions: {versions}.",
        "",
        goals_text(targets),
        "",
        "Method: one run, same box, same upstream (nginx answering a fixed chat completion); each target "
        f"alone in turn, one process (LiteLLM `--num_workers 1`); `wrk -t1 -cN -d{options.duration_s}s` with "
        "`chat.lua` (for the peers, a wrapper setting their headers: LiteLLM's master key `sk-bench-key`, "
        "Portkey's `x-portkey-provider: openai` and `x-portkey-custom-host`) after a warm-up. This gateway "
        "runs twice, in the overhead benchmark's configurations (`benchmarks/gateway_configs.py`): open mode "
        "(`bare`: no key, cache off) and all features on (`all`: a key from a keys file, limits counted in "
        "a Redis the run starts, the cache in that Redis with `chat-cache-miss.lua` making every request a "
        "miss that is forwarded and stored, metrics, one JSON log line per request); neither peer has a "
        "cache, limits or keys configured, so they do less per request than `all`. Ratios are "
        "requests/s over direct's and over this gateway's at the same concurrency; p50 - direct at c=1 is "
        "the per-request overhead. Peak RSS = sum of VmHWM over the target's process tree. Before each "
        "target the run waits for load < 1 and no test suite or other benchmark running"
        + (
            f"; figures of {', '.join(noisy)} are noisy: the machine stayed busy (other test suites and "
            "benchmarks, load above 1) through the wait, see `quiet` and `other_cpu_pct` in the JSON."
            if noisy
            else "."
        ),
        "",
        tables(targets, options.concurrency),
    ]
    if failed:
        parts += ["", "Not measured:", *failed]
    if notes:
        parts += ["", "Notes:", *notes]
    return "\n".join(parts)


# --- command line ----------------------------------------------------------------------------------


def peer_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if any(name not in peers.PEER_KEYS for name in names):
        raise argparse.ArgumentTypeError(f"{text!r}: expected names from {','.join(peers.PEER_KEYS)}")
    return list(dict.fromkeys(names))


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers_bench", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target (default 2)")
    parser.add_argument("--concurrency", type=cli.number_list, default=[1, 8, 32], help="connections (default 1,8,32)")
    parser.add_argument(
        "--peers", type=peer_list, default=list(peers.PEER_KEYS), help="default litellm,portkey ('' for none)"
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=600.0, metavar="SECONDS",
        help="wait up to this long in all for a quiet machine, then measure and mark figures noisy (default 600)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 s warm-up, no quiet wait, no files written")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.quiet_wait < 0:
        parser.error("--duration must be at least 1, --warmup and --quiet-wait at least 0")
    return Options(
        duration_s=2 if args.quick else args.duration,
        warmup_s=min(args.warmup, 1) if args.quick else args.warmup,
        concurrency=args.concurrency,
        peers=args.peers,
        quiet_wait_s=0.0 if args.quick else args.quiet_wait,
        quick=args.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    machine = machine_info()
    started = datetime.now(UTC).replace(microsecond=0)
    targets = cli.run(run_benchmark(options), say)
    print(tables(targets, options.concurrency))
    print(goals_text(targets))
    if options.quick:
        return 0
    data: dict[str, object] = {
        "benchmark": "peers",
        "started": started.isoformat(),
        "machine": machine,
        "options": asdict(options),
        "targets": [asdict(t) for t in targets],
        "ratios": ratios(targets, options.concurrency),
        "goals": peers_gateway.peer_goals(max_rps(targets)),
    }
    json_path = write_json("peers", started, data)
    update_section("throughput", markdown(started, machine, options, targets, json_path))
    say(f"wrote {json_path} and the peers section of {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
