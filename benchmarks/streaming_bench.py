"""Streaming through each gateway: time to first token over direct's, and whether chunks keep their pace.

    .venv/bin/python -m benchmarks.streaming_bench [--peers litellm,portkey] [--requests 20]
        [--concurrency 1,8] [--quiet-wait 600] [--quick]

The upstream is the project's simulator (`llm-gateway simulate --kind vllm --itl 0.02 --reply-tokens 32 32`):
every reply is 32 content chunks, 20 ms apart. An aiohttp client streams chat completions from it directly
and through this gateway (`llm-gateway serve`, open mode), LiteLLM's proxy and Portkey's gateway, one target
at a time, at each concurrency, and records the time to the first content chunk and the gaps between content
chunks. A gateway that buffers shows a first token late by the whole reply and gaps near zero; one that
coalesces shows bunched gaps (< 5 ms) beside doubled ones. Writes benchmarks/results/peers-streaming-<UTC>.json
and the streaming part of the `peers` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from benchmarks import cli, gateway_configs, gateway_server, peers, peers_bench, procs

PACE_S = 0.02
REPLY_TOKENS = 32
BUNCHED_S = 0.005
"""A gap shorter than this between two content chunks means they were sent together."""
PROMPT = [{"role": "user", "content": "Say ok"}]


@dataclass(frozen=True, slots=True)
class Options:
    requests: int
    """Requests per concurrency level (at concurrency N, N clients share them)."""
    concurrency: list[int]
    peers: list[str]
    quiet_wait_s: float
    quick: bool


@dataclass(slots=True)
class Stream:
    ttft_s: float
    total_s: float
    chunk_times: list[float]


@dataclass(slots=True)
class Level:
    """Figures of one target at one concurrency."""

    concurrency: int
    requests: int
    errors: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    total_p50_ms: float
    chunks_mean: float
    gap_mean_ms: float
    gap_stdev_ms: float
    gap_max_ms: float
    bunched_pct: float
    first_error: str = ""
    ttft_p50_over_direct_ms: float | None = None
    ttft_p99_over_direct_ms: float | None = None
    gap_mean_vs_pace_ms: float | None = None


@dataclass(slots=True)
class Target:
    key: str
    name: str
    version: str = ""
    status: str = "ok"
    levels: list[Level] = field(default_factory=list)
    quiet: peers_bench.Quiet | None = None
    notes: list[str] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def stream_once(session: aiohttp.ClientSession, url: str, model: str, headers: dict[str, str]) -> Stream:
    body = {"model": model, "messages": PROMPT, "stream": True, "max_tokens": REPLY_TOKENS}
    started = time.perf_counter()
    times: list[float] = []
    async with session.post(url, json=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {(await response.text())[:300]}")
        async for raw in response.content:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            choices = event.get("choices") if isinstance(event, dict) else None
            if choices and (choices[0].get("delta") or {}).get("content"):
                times.append(time.perf_counter())
    if not times:
        raise RuntimeError("no content chunk in the stream")
    return Stream(times[0] - started, time.perf_counter() - started, times)


async def run_level(url: str, model: str, headers: dict[str, str], concurrency: int, requests: int) -> Level:
    timeout = aiohttp.ClientTimeout(total=60)
    streams: list[Stream] = []
    errors: list[str] = []
    per_client = max(1, requests // concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        await stream_once(session, url, model, headers)  # warm-up: connections, first-request paths

        async def client() -> None:
            for _ in range(per_client):
                try:
                    streams.append(await stream_once(session, url, model, headers))
                except (RuntimeError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(client() for _ in range(concurrency)))
    if not streams:
        raise RuntimeError(f"every stream failed: {errors[0] if errors else '?'}")
    ttfts = [s.ttft_s * 1000 for s in streams]
    gaps = [(b - a) * 1000 for s in streams for a, b in zip(s.chunk_times, s.chunk_times[1:], strict=False)]
    return Level(
        concurrency=concurrency,
        requests=len(streams) + len(errors),
        errors=len(errors),
        ttft_p50_ms=round(_pct(ttfts, 0.5), 2),
        ttft_p99_ms=round(_pct(ttfts, 0.99), 2),
        total_p50_ms=round(_pct([s.total_s * 1000 for s in streams], 0.5), 1),
        chunks_mean=round(statistics.fmean(len(s.chunk_times) for s in streams), 1),
        gap_mean_ms=round(statistics.fmean(gaps), 2) if gaps else 0.0,
        gap_stdev_ms=round(statistics.pstdev(gaps), 2) if gaps else 0.0,
        gap_max_ms=round(max(gaps), 1) if gaps else 0.0,
        bunched_pct=round(100 * sum(g < BUNCHED_S * 1000 for g in gaps) / len(gaps), 1) if gaps else 0.0,
        first_error=errors[0][:300] if errors else "",
    )


async def measure(
    target: Target, url: str, model: str, headers: dict[str, str], options: Options, budget: peers_bench.QuietBudget
) -> None:
    target.quiet = await budget.wait()
    for c in options.concurrency:
        level = await run_level(url, model, headers, c, max(options.requests, c))
        target.levels.append(level)
        peers_bench.say(
            f"  {target.name} c={c}: TTFT p50 {level.ttft_p50_ms:.1f} ms p99 {level.ttft_p99_ms:.1f} ms, "
            f"gap {level.gap_mean_ms:.2f} ± {level.gap_stdev_ms:.2f} ms (max {level.gap_max_ms:.0f}), "
            f"bunched {level.bunched_pct:.0f}%, chunks {level.chunks_mean:.0f}, errors {level.errors}"
        )


def compare(targets: list[Target]) -> None:
    direct = next((t for t in targets if t.key == "direct"), None)
    for target in targets:
        for level in target.levels:
            level.gap_mean_vs_pace_ms = round(level.gap_mean_ms - PACE_S * 1000, 2)
            base = next((d for d in direct.levels if d.concurrency == level.concurrency), None) if direct else None
            if base is not None:
                level.ttft_p50_over_direct_ms = round(level.ttft_p50_ms - base.ttft_p50_ms, 2)
                level.ttft_p99_over_direct_ms = round(level.ttft_p99_ms - base.ttft_p99_ms, 2)


async def start_simulator(workdir: Path, port: int) -> procs.Child:
    script = gateway_server.BIN / "llm-gateway"
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]
    argv = [
        *entry, "simulate", "--kind", "vllm", "--host", procs.LOOPBACK, "--port", str(port),
        "--itl", str(PACE_S), "--reply-tokens", str(REPLY_TOKENS), str(REPLY_TOKENS),
        "--model", peers.UPSTREAM_MODEL, "--model", peers.MODEL,
    ]  # fmt: skip
    ready = f"http://{procs.LOOPBACK}:{port}/v1/models"
    return await procs.start_ready(
        "simulator", argv, workdir / "simulator.log", ready, cwd=gateway_server.ROOT, timeout_s=60.0
    )


async def run_benchmark(options: Options) -> list[Target]:
    installed = await peers_bench.install_peers(options.peers)
    budget = peers_bench.QuietBudget(options.quiet_wait_s)
    targets: list[Target] = []
    children: list[procs.Child] = []
    with tempfile.TemporaryDirectory(prefix="llm-gateway-streaming-") as tmp:
        workdir = Path(tmp)
        try:
            sim_port = procs.free_port()
            peers_bench.say(
                f"starting the simulator on port {sim_port} ({REPLY_TOKENS} chunks, {PACE_S * 1000:.0f} ms apart)"
            )
            children.append(await start_simulator(workdir, sim_port))
            upstream = f"http://{procs.LOOPBACK}:{sim_port}/v1"
            direct = Target("direct", "direct to the simulator")
            targets.append(direct)
            await measure(direct, f"{upstream}/chat/completions", peers.UPSTREAM_MODEL, {}, options, budget)

            gateway = Target(
                "gateway", "this gateway (llm-gateway serve, open mode)", version=peers_bench.gateway_version()
            )
            targets.append(gateway)
            port = procs.free_port()
            catalog = await asyncio.to_thread(gateway_server.write_catalog, workdir, sim_port)
            peers_bench.say(f"starting this gateway on port {port}")
            try:
                child = await gateway_server.start_gateway(
                    "serve", workdir, catalog, port, extra_env=gateway_configs.CONFIGS["bare"].environment(1)
                )
            except RuntimeError as exc:
                gateway.status = f"did not start: {exc}"
            else:
                children.append(child)
                try:
                    url = f"http://{procs.LOOPBACK}:{port}/v1/chat/completions"
                    await measure(gateway, url, peers.MODEL, gateway_server.AUTH_HEADERS, options, budget)
                except RuntimeError as exc:
                    gateway.status = f"failed: {exc}"
                finally:
                    children.remove(child)
                    await child.stop()

            async def measure_peer(target: Target, peer: peers.Peer) -> None:
                try:
                    await measure(target, peer.chat_url, peers.MODEL, peer.headers, options, budget)
                except RuntimeError as exc:
                    log = peer.child.log_tail(40)
                    cause = next((line.strip()[-200:] for line in log.splitlines() if "Error" in line), "")
                    target.status = f"failed: {exc}" + (f" (its log: {cause})" if cause else "")
                    if peer.key == "portkey" and peers.PORTKEY_STREAM_FAILURE in log:
                        target.notes.append(peers.PORTKEY_STREAM_CAUSE)
                    peers_bench.say(f"  {peer.key} {target.status}\n{peer.child.log_tail(15)}")

            targets += await peers.measure_each(
                installed, workdir, upstream, lambda key: Target(key, key), measure_peer, peers_bench.say
            )
        finally:
            for child in reversed(children):
                await procs.stop_or_say(child, peers_bench.say)
    compare(targets)
    return targets


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def table(targets: list[Target]) -> str:
    lines = [
        "| target | c | streams | TTFT p50 ms | TTFT p99 ms | p50 over direct | p99 over direct | chunks "
        "| gap mean ms | gap vs 20 ms pace | gap stdev ms | gap max ms | bunched gaps | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        if not t.levels:
            lines.append(f"| {t.name} | - | {t.status.splitlines()[0][:160]} |" + " |" * 11)
            continue
        noisy = " (noisy)" if t.quiet is not None and not t.quiet.quiet else ""
        for i, lv in enumerate(t.levels):
            lines.append(
                f"| {t.name + noisy if i == 0 else ''} | {lv.concurrency} | {lv.requests} | {lv.ttft_p50_ms:.2f} "
                f"| {lv.ttft_p99_ms:.2f} | {_signed(lv.ttft_p50_over_direct_ms)} "
                f"| {_signed(lv.ttft_p99_over_direct_ms)} "
                f"| {lv.chunks_mean:.0f} | {lv.gap_mean_ms:.2f} | {_signed(lv.gap_mean_vs_pace_ms)} "
                f"| {lv.gap_stdev_ms:.2f} | {lv.gap_max_ms:.1f} | {lv.bunched_pct:.0f}% | {lv.errors} |"
            )
    return "\n".join(lines)


TTFT_GOAL_MS = 1.0
"""Issue 11: streaming TTFT overhead at most 1 ms p50 (concurrency 1); no chunk held back."""


def goals_text(targets: list[Target]) -> str:
    """This gateway against the streaming goals, at concurrency 1."""
    gateway = next((t for t in targets if t.key == "gateway"), None)
    level = next((lv for lv in gateway.levels if lv.concurrency == 1), None) if gateway else None
    if level is None or level.ttft_p50_over_direct_ms is None:
        return "Goal (issue 11): TTFT overhead ≤ 1 ms p50 at concurrency 1, no chunk held back: not measured."
    ttft_ok = level.ttft_p50_over_direct_ms <= TTFT_GOAL_MS and level.errors == 0
    paced = level.bunched_pct == 0 and level.chunks_mean == REPLY_TOKENS
    return (
        f"Goal (issue 11), this gateway at concurrency 1: TTFT overhead {level.ttft_p50_over_direct_ms:+.2f} ms p50 "
        f"(≤ {TTFT_GOAL_MS:g} ms: {'met' if ttft_ok else '**missed**'}); chunks passed on as produced "
        f"({level.chunks_mean:.0f} of {REPLY_TOKENS} chunks, {level.bunched_pct:.0f}% bunched gaps, mean gap "
        f"{level.gap_mean_ms:.2f} ms for a {PACE_S * 1000:.0f} ms pace: {'met' if paced else '**missed**'})."
    )


def markdown(started: datetime, machine: dict[str, object], options: Options, targets: list[Target], path: Path) -> str:
    versions = ", ".join(f"{t.key}: {t.version or '-'}" for t in targets if t.key != "direct")
    failed = [f"- {t.key}: {t.status}" for t in targets if t.status != "ok"]
    notes = [f"- {t.key}: {note}" for t in targets for note in t.notes]
    return "\n".join(
        [
            "### Streaming through each gateway",
            "",
            f"Generated by `python -m benchmarks.streaming_bench` on {started:%Y-%m-%d %H:%M} UTC "
            f"({machine.get('nproc')} cores, load at start {machine.get('load_average_at_start')}); raw figures in "
            f"`{path.relative_to(peers_bench.HERE.parent)}`. Versions: {versions}.",
            "",
            "Method: upstream `llm-gateway simulate --kind vllm --itl 0.02 --reply-tokens 32 32` (32 content "
            "chunks, 20 ms apart); an aiohttp client streams `stream: true` chat completions directly and through "
            f"each gateway in turn, {options.requests} streams per concurrency level after one warm-up stream. "
            "TTFT = time to the first content chunk; over direct = minus direct's at the same concurrency; gaps "
            "are between consecutive content chunks of a stream: a mean at the pace and no bunched gaps (< 5 ms) "
            "mean chunks are passed on as produced, not buffered. At concurrency above 1 the simulator admits "
            "requests at its 20 ms step boundaries, so a burst sent directly waits for the next step while "
            "requests spread out by a gateway may not: TTFT over direct there can be negative; compare c=1.",
            "",
            goals_text(targets),
            "",
            table(targets),
            *(["", "Not measured:", *failed] if failed else []),
            *(["", "Notes:", *notes] if notes else []),
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.streaming_bench", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=24, help="streams per concurrency level (default 24)")
    parser.add_argument("--concurrency", type=cli.number_list, default=[1, 8], help="clients (default 1,8)")
    parser.add_argument(
        "--peers", type=peers_bench.peer_list, default=list(peers.PEER_KEYS), help="default litellm,portkey"
    )
    parser.add_argument("--quiet-wait", type=float, default=600.0, metavar="SECONDS", help="as in peers_bench")
    parser.add_argument("--quick", action="store_true", help="8 streams per level, no quiet wait, no files written")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.quiet_wait < 0:
        parser.error("--requests must be at least 1, --quiet-wait at least 0")
    return Options(
        requests=8 if args.quick else args.requests,
        concurrency=args.concurrency,
        peers=args.peers,
        quiet_wait_s=0.0 if args.quick else args.quiet_wait,
        quick=args.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    machine = peers_bench.machine_info()
    started = datetime.now(UTC).replace(microsecond=0)
    targets = cli.run(run_benchmark(options), peers_bench.say)
    print(table(targets))
    print(goals_text(targets))
    if options.quick:
        return 0
    data: dict[str, object] = {
        "benchmark": "peers-streaming",
        "started": started.isoformat(),
        "machine": machine,
        "options": asdict(options),
        "pace_ms": PACE_S * 1000,
        "reply_chunks": REPLY_TOKENS,
        "targets": [asdict(t) for t in targets],
    }
    path = peers_bench.write_json("peers-streaming", started, data)
    peers_bench.update_section("streaming", markdown(started, machine, options, targets, path))
    peers_bench.say(f"wrote {path} and the streaming part of the peers section of {peers_bench.RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
