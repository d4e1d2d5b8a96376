"""Where a relayed chunk's time goes: py-spy (benchmarks/harness/profiling.py, native frames included)
on a fresh one-process gateway while N chat streams run through it at the pace; the samples summed up
into a markdown summary and a flame graph in the runs folder (published when the run writes its
section)."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchmarks.harness import configs, files, flamegraph, gateway, profiling
from benchmarks.harness.cli import say
from benchmarks.peers import servers
from benchmarks.streaming_scale.point import Point, run_point
from benchmarks.streaming_scale.run import Options, load_for, start_pacer
from testkit.loopback import free_port


@dataclass(slots=True)
class Profile:
    streams: int
    point: Point | None = None
    summary: str = ""
    """The markdown summary's path (runs folder), or "" when nothing was recorded."""
    flamegraph: str = ""
    error: str = ""
    top_self: list[tuple[str, float]] | None = None
    packages: list[tuple[str, float]] | None = None


async def profile_gateway(options: Options, streams: int, started: datetime) -> Profile:
    result = Profile(streams)
    stem = files.RUNS_DIR / f"streaming-scale-profile-{files.stamp(started)}-{streams}"
    with tempfile.TemporaryDirectory(prefix="llm-gateway-streaming-scale-profile-") as tmp:
        workdir = Path(tmp)
        upstream, pacer_port = await start_pacer(workdir, options)
        try:
            catalog = await asyncio.to_thread(gateway.write_catalog, workdir, pacer_port)
            port = free_port()
            child = await gateway.start_gateway(
                workdir, catalog, port, extra_env=configs.CONFIGS["bare"].environment(1), source=options.gateway_source
            )
            try:
                load = load_for(options, port, "chat", servers.MODEL, gateway.AUTH_HEADERS, streams)
                say(f"profiling the gateway at {streams} streams")
                async with profiling.record(child.pid, stem.with_suffix(".folded")) as recording:
                    result.point = await run_point(load, child.pid, upstream.pid)
            finally:
                await child.stop()
        finally:
            await upstream.stop()
    if recording.error:
        result.error = recording.error
        return result
    folded = await asyncio.to_thread(stem.with_suffix(".folded").read_text)
    summary = profiling.summarize(folded)
    result.top_self, result.packages = summary.self_pct[:12], summary.package_self_pct[:8]
    svg = stem.with_suffix(".svg")
    await asyncio.to_thread(svg.write_text, flamegraph.render(folded, f"gateway, {streams} streams at the pace"))
    text = profiling.markdown(
        summary,
        f"Gateway profile: {streams} chat streams at a {options.pace_s * 1000:.0f} ms pace",
        svg.name,
        files.repo_path(stem.with_suffix(".folded")),
    )
    md = stem.with_suffix(".md")
    await asyncio.to_thread(md.write_text, text)
    result.summary, result.flamegraph = str(md), str(svg)
    return result
