"""One streaming run: the simulator up throughout (32 content chunks, 20 ms apart); direct, then this
gateway in open mode, then each peer that installed, one at a time, each streamed from at each
concurrency (client.py). Everything started is stopped on the way out."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import configs, gateway, procs
from benchmarks.harness.cli import say
from benchmarks.harness.quiet import Quiet, QuietBudget
from benchmarks.peers import servers
from benchmarks.peers.install import install_all
from benchmarks.peers.run import gateway_version
from benchmarks.streaming.client import REPLY_TOKENS, Level, run_level
from testkit.loopback import LOOPBACK, free_port

PACE_S = 0.02


@dataclass(frozen=True, slots=True)
class Options:
    requests: int
    """Requests per concurrency level (at concurrency N, N clients share them)."""
    concurrency: list[int]
    peers: list[str]
    quiet_wait_s: float
    quick: bool


@dataclass(slots=True)
class Target:
    key: str
    name: str
    version: str = ""
    status: str = "ok"
    levels: list[Level] = field(default_factory=list)
    quiet: Quiet | None = None
    notes: list[str] = field(default_factory=list)


async def measure(
    target: Target, url: str, model: str, headers: dict[str, str], options: Options, budget: QuietBudget
) -> None:
    target.quiet = await budget.wait()
    for c in options.concurrency:
        level = await run_level(url, model, headers, c, max(options.requests, c))
        target.levels.append(level)
        say(
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


async def _measure_gateway(target: Target, workdir: Path, sim_port: int, options: Options, budget: QuietBudget) -> None:
    port = free_port()
    catalog = await asyncio.to_thread(gateway.write_catalog, workdir, sim_port)
    say(f"starting this gateway on port {port}")
    try:
        child = await gateway.start_gateway(workdir, catalog, port, extra_env=configs.CONFIGS["bare"].environment(1))
    except RuntimeError as exc:
        target.status = f"did not start: {exc}"
        return
    try:
        url = f"http://{LOOPBACK}:{port}/v1/chat/completions"
        await measure(target, url, servers.MODEL, gateway.AUTH_HEADERS, options, budget)
    except RuntimeError as exc:
        target.status = f"failed: {exc}"
    finally:
        await child.stop()


async def run_benchmark(options: Options) -> list[Target]:
    installed = await install_all(options.peers, say)
    budget = QuietBudget(options.quiet_wait_s, say)
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="llm-gateway-streaming-") as tmp:
        workdir = Path(tmp)
        sim_port = free_port()
        say(f"starting the simulator on port {sim_port} ({REPLY_TOKENS} chunks, {PACE_S * 1000:.0f} ms apart)")
        pacing = ["--itl", str(PACE_S), "--reply-tokens", str(REPLY_TOKENS), str(REPLY_TOKENS)]
        models = (servers.UPSTREAM_MODEL, servers.MODEL)
        simulator = await gateway.start_simulator(
            "simulator", sim_port, workdir, pacing, models=models, ready_path="/v1/models"
        )
        try:
            upstream = f"http://{LOOPBACK}:{sim_port}/v1"
            direct = Target("direct", "direct to the simulator")
            targets.append(direct)
            await measure(direct, f"{upstream}/chat/completions", servers.UPSTREAM_MODEL, {}, options, budget)
            this = Target("gateway", "this gateway (llm-gateway serve, open mode)", version=gateway_version())
            targets.append(this)
            await _measure_gateway(this, workdir, sim_port, options, budget)

            async def measure_peer(target: Target, peer: servers.Peer) -> None:
                try:
                    await measure(target, peer.chat_url, servers.MODEL, peer.headers, options, budget)
                except RuntimeError as exc:
                    log = peer.child.log_tail(40)
                    cause = next((line.strip()[-200:] for line in log.splitlines() if "Error" in line), "")
                    target.status = f"failed: {exc}" + (f" (its log: {cause})" if cause else "")
                    if peer.key == "portkey" and servers.PORTKEY_STREAM_FAILURE in log:
                        target.notes.append(servers.PORTKEY_STREAM_NOTE)
                    say(f"  {peer.key} {target.status}\n{peer.child.log_tail(15)}")

            targets += await servers.measure_each(
                installed, workdir, upstream, lambda key: Target(key, key), measure_peer, say
            )
        finally:
            await procs.stop_or_say(simulator, say)
    compare(targets)
    return targets
