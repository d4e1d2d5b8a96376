"""One streaming-at-scale run: the pacer up throughout; direct, then this gateway (one process, then two)
with chat and with Messages translated to chat, then each peer that installed (chat), each at every
number of streams (point.py). A fresh gateway per point, so its resident memory before the load is a
baseline that no earlier point has grown; a peer is started once and measured at every number.
Everything started is stopped on the way out."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import configs, gateway, procs
from benchmarks.harness.cli import say
from benchmarks.harness.quiet import Quiet, QuietBudget
from benchmarks.peers import servers
from benchmarks.peers.install import install_all
from benchmarks.streaming_scale import pacer
from benchmarks.streaming_scale.point import Load, Point, run_point
from testkit.loopback import LOOPBACK, free_port

PROMPT = [{"role": "user", "content": "Say ok"}]
SURFACES = {
    "chat": ("/v1/chat/completions", "[DONE]"),
    "messages": ("/v1/messages", "message_stop"),
}
"""Surface -> path and the marker of its stream's end."""


@dataclass(frozen=True, slots=True)
class Options:
    streams: list[int]
    peer_streams: list[int]
    """The peers' numbers of streams: fewer, and lower, than this gateway's (they fall behind sooner)."""
    processes: list[int]
    surfaces: list[str]
    peers: list[str]
    pace_s: float
    chunks: int
    window_s: float
    quiet_wait_s: float
    quick: bool
    source: str = ""
    """Another source tree to run the gateway from (an older commit's checkout), else this one."""

    @property
    def gateway_source(self) -> gateway.Source:
        return gateway.Source(Path(self.source), self.source) if self.source else gateway.WORKING_TREE


@dataclass(slots=True)
class Target:
    key: str
    name: str
    surface: str = "chat"
    processes: int = 1
    version: str = ""
    status: str = "ok"
    points: list[Point] = field(default_factory=list)
    quiet: Quiet | None = None
    notes: list[str] = field(default_factory=list)


def load_for(options: Options, port: int, surface: str, model: str, headers: dict[str, str], streams: int) -> Load:
    path, end = SURFACES[surface]
    body = {"model": model, "messages": PROMPT, "stream": True, "max_tokens": options.chunks}
    return Load(LOOPBACK, port, path, body, headers, end, streams, options.chunks, options.pace_s, options.window_s)


def warm_up(load: Load) -> Load:
    """Two streams started at once and counted for half a second: the first-request paths, the pool."""
    return dataclasses.replace(load, streams=2, chunks=5, window_s=0.5)


def _said(target: Target, point: Point) -> None:
    say(
        f"  {target.key} {target.surface} x{target.processes} n={point.streams}: TTFT p50 {point.ttft_p50_ms:.1f} "
        f"p99 {point.ttft_p99_ms:.1f} ms, gap p99 {point.gap_p99_ms:.1f} ms, bunched {point.bunched_pct:.1f}%, "
        f"{point.chunks_per_s} chunks/s, gateway {point.gateway_cpu_pct:.0f}% "
        f"({point.gateway_ms_per_1k_chunks} ms/1k), upstream {point.upstream_cpu_pct:.0f}%, clients "
        f"{point.client_cpu_pct:.0f}%, rss/stream {point.rss_kb_per_stream} KB, errors {point.errors}"
    )


async def _gateway_points(
    target: Target, workdir: Path, pacer_port: int, upstream_pid: int, options: Options, budget: QuietBudget
) -> None:
    catalog = await asyncio.to_thread(gateway.write_catalog, workdir, pacer_port)
    environment = configs.CONFIGS["bare"].environment(target.processes)
    target.quiet = await budget.wait()
    for streams in options.streams:
        port = free_port()
        try:
            child = await gateway.start_gateway(
                workdir,
                catalog,
                port,
                extra_env=environment,
                label=f"{target.surface}-{target.processes}-{streams}",
                source=options.gateway_source,
            )
        except RuntimeError as exc:
            target.status = f"did not start: {exc}"
            return
        try:
            load = load_for(options, port, target.surface, servers.MODEL, gateway.AUTH_HEADERS, streams)
            await run_point(warm_up(load), None, upstream_pid)
            point = await run_point(load, child.pid, upstream_pid)
        finally:
            await child.stop()
        target.points.append(point)
        _said(target, point)


async def _peer_points(
    target: Target, peer: servers.Peer, upstream_pid: int, options: Options, budget: QuietBudget
) -> None:
    target.quiet = await budget.wait()
    for streams in options.peer_streams:
        point = await run_point(
            load_for(options, peer.port, "chat", servers.MODEL, peer.headers, streams), peer.child.pid, upstream_pid
        )
        target.points.append(point)
        _said(target, point)
        if point.completed == 0:
            log = peer.child.log_tail(200)
            target.status = f"every stream failed: {point.first_errors[0] if point.first_errors else '?'}"
            if peer.key == "portkey" and servers.PORTKEY_STREAM_FAILURE in log:
                target.notes.append(servers.PORTKEY_STREAM_NOTE)
            return


def compare(targets: list[Target], pace_s: float) -> None:
    """Each point against direct's at the same number of streams, and its gaps against the pace."""
    direct = next((t for t in targets if t.key == "direct"), None)
    for target in targets:
        for point in target.points:
            point.gap_p99_over_pace_ms = round(point.gap_p99_ms - pace_s * 1000, 1)
            base = next((p for p in direct.points if p.streams == point.streams), None) if direct else None
            if point.completed == 0:
                continue
            if base is not None and target is not direct:
                point.ttft_p50_over_direct_ms = round(point.ttft_p50_ms - base.ttft_p50_ms, 2)
                point.ttft_p99_over_direct_ms = round(point.ttft_p99_ms - base.ttft_p99_ms, 2)


async def start_pacer(workdir: Path, options: Options) -> tuple[procs.Child, int]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "benchmarks.streaming_scale.pacer",
        "--port",
        str(port),
        "--pace",
        str(options.pace_s),
        "--chunks",
        str(options.chunks),
    ]
    child = await procs.start_ready("pacer", argv, workdir / "pacer.log", f"http://{LOOPBACK}:{port}/v1/models")
    return child, port


async def run_benchmark(options: Options, on_target: Callable[[Target], None] = lambda _: None) -> list[Target]:
    installed = await install_all(options.peers, say) if options.peers else {}
    budget = QuietBudget(options.quiet_wait_s, say)
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="llm-gateway-streaming-scale-") as tmp:
        workdir = Path(tmp)
        upstream, port = await start_pacer(workdir, options)
        say(f"pacer on port {port}: {options.chunks} chunks {options.pace_s * 1000:.0f} ms apart per stream")
        try:
            direct = Target("direct", "direct to the pacer")
            targets.append(direct)
            direct.quiet = await budget.wait()
            for streams in sorted(set(options.streams) | (set(options.peer_streams) if installed else set())):
                direct.points.append(
                    await run_point(load_for(options, port, "chat", pacer.MODEL, {}, streams), None, upstream.pid)
                )
                _said(direct, direct.points[-1])
            on_target(direct)
            for processes in options.processes:
                for surface in options.surfaces:
                    name = f"this gateway, {processes} process{'es' if processes > 1 else ''}, {surface}"
                    target = Target("gateway", name, surface, processes)
                    targets.append(target)
                    await _gateway_points(target, workdir, port, upstream.pid, options, budget)
                    on_target(target)
            upstream_url = f"http://{LOOPBACK}:{port}/v1"

            async def measure_peer(target: Target, peer: servers.Peer) -> None:
                await _peer_points(target, peer, upstream.pid, options, budget)

            targets += await servers.measure_each(
                installed, workdir, upstream_url, lambda key: Target(key, key), measure_peer, say
            )
        finally:
            await procs.stop_or_say(upstream, say)
    compare(targets, options.pace_s)
    return targets
