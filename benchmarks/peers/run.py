"""One peers run: nginx up throughout; direct, then this gateway in its `bare` and `all` configurations,
then each peer that installed, one at a time, each measured with wrk (measure.py). A peer that cannot be
installed or started is recorded as such and the run goes on without it; everything started is stopped
on the way out."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.harness import gateway, machine, nginx, proc_stats, procs
from benchmarks.harness.cli import say
from benchmarks.harness.quiet import QuietBudget
from benchmarks.load import wrk
from benchmarks.peers import gateway_rows, servers
from benchmarks.peers.install import install_all
from benchmarks.peers.measure import Target, check_chat, measure, write_lua
from testkit.loopback import LOOPBACK, free_port


@dataclass(frozen=True, slots=True)
class Options:
    duration_s: int
    warmup_s: int
    concurrency: list[int]
    peers: list[str]
    quiet_wait_s: float
    quick: bool


def gateway_version() -> str:
    version = machine.package_version("llm-gateway")
    return "source tree" if version == "not installed" else version


class MeasureTarget:
    """wrk at the run's concurrency levels, after the machine's quiet wait (the run's options)."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.budget = QuietBudget(options.quiet_wait_s, say)

    async def __call__(self, target: Target, script: Path) -> None:
        o = self.options
        await measure(target, script, o.concurrency, o.duration_s, o.warmup_s, self.budget)


async def _measure_gateway_rows(
    targets: list[Target], workdir: Path, nginx_port: int, measure_target: MeasureTarget
) -> None:
    catalog = await asyncio.to_thread(gateway.write_catalog, workdir, nginx_port)
    for row in gateway_rows.ROWS:
        target = Target(row.key, row.name, version=gateway_version())
        targets.append(target)

        async def measure_at(url: str, script: Path, target: Target = target) -> None:
            target.url = url
            await measure_target(target, script)

        try:
            peak = await gateway_rows.run_row(row, workdir, catalog, measure_at, say)
            target.peak_rss_mb = round(peak / 2**20, 1)
        except (RuntimeError, OSError, httpx.HTTPError) as exc:
            target.status = f"failed: {exc}"
            say(f"  {row.key} {target.status}")


async def run_benchmark(options: Options) -> list[Target]:
    installed = await install_all(options.peers, say)
    measure_target = MeasureTarget(options)
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="llm-gateway-peers-") as tmp:
        workdir = Path(tmp)
        nginx_port = free_port()
        say(f"starting nginx on port {nginx_port}")
        nginx_child = await nginx.start_nginx(workdir / "nginx", nginx_port)
        try:
            upstream = f"http://{LOOPBACK}:{nginx_port}/v1"
            direct = Target("direct", "direct to nginx", url=f"{upstream}/chat/completions")
            await measure_target(direct, wrk.SCRIPT)
            targets.append(direct)
            await _measure_gateway_rows(targets, workdir, nginx_port, measure_target)

            async def measure_peer(target: Target, peer: servers.Peer) -> None:
                target.url = peer.chat_url
                try:
                    await check_chat(peer.chat_url, peer.headers)
                    script = await asyncio.to_thread(write_lua, workdir, peer.key, peer.headers)
                    await measure_target(target, script)
                    peak = await asyncio.to_thread(proc_stats.peak_rss_bytes, peer.child.pid)
                    target.peak_rss_mb = round(peak / 2**20, 1)
                except (RuntimeError, httpx.HTTPError) as exc:
                    target.status = f"failed: {exc}"
                    say(f"  {peer.key} {target.status}\n{peer.child.log_tail(15)}")

            targets += await servers.measure_each(
                installed, workdir, upstream, lambda key: Target(key, key), measure_peer, say
            )
        finally:
            await procs.stop_or_say(nginx_child, say)
    return targets
