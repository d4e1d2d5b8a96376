"""One surfaces run: the simulator (vLLM mode, 32-token replies, 20 ms apart) and one `llm-gateway serve`
in front of it (open mode, cache off), up throughout; rounds of CPU measurements, every call kind once a
round in a rotating order; then each surface's streams timed for their pacing. Everything started is
stopped on the way out."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchmarks.harness import configs, files, gateway, interference, proc_stats, procs
from benchmarks.harness.cli import say
from benchmarks.harness.quiet import Quiet, QuietBudget
from benchmarks.peers.run import gateway_version
from benchmarks.surfaces import client, cpu, instructions, pacing
from benchmarks.surfaces.calls import BY_KEY, Surface
from benchmarks.surfaces.instructions import InstructionRow
from benchmarks.surfaces.profile import ProfileNote, compare_to_chat, profile_kind
from testkit.loopback import LOOPBACK, free_port

PACE_S = 0.02
REPLY_TOKENS = 32
UPSTREAM_MODELS = ("bench-upstream", "bench")
PROFILE_BATCHES = 3
"""A profile's calls, in rounds' worth: py-spy sees a few hundred busy samples a round of streams."""
BUSY_PATTERN = r"pytest|benchmarks\.|cc1plus|llama-server"
"""Test suites, other benchmarks, C++ builds and llama.cpp servers (their threads spin): what the run
waits out. Not the load average: the run's own gateway, simulator and clients keep it near 1."""


@dataclass(frozen=True, slots=True)
class Options:
    requests: int
    """Calls per call kind and round (the CPU figures)."""
    rounds: int
    concurrency: int
    """Clients of the CPU rounds (closed loop)."""
    pacing_streams: int
    """Streams per surface for the pacing figures, one at a time."""
    surfaces: list[str]
    quiet_wait_s: float
    quick: bool
    profile: bool = False
    """After the measurements, one more batch of each call kind under py-spy (profile.py)."""
    instructions: int = 0
    """Calls per kind under callgrind (instructions.py); 0: not measured."""
    """After the measurements, one more batch of each call kind under py-spy (profile.py)."""


@dataclass(slots=True)
class Result:
    version: str = ""
    gateway_processes: int = 0
    cpu_rows: list[cpu.CpuRow] = field(default_factory=list)
    pacing: list[pacing.Pacing] = field(default_factory=list)
    quiet: list[Quiet] = field(default_factory=list)
    profiles: list[ProfileNote] = field(default_factory=list)
    instructions: list[InstructionRow] = field(default_factory=list)


def kinds(options: Options) -> list[tuple[Surface, bool]]:
    """Every (surface, streamed) the CPU rounds measure: plain ones first, chat first in each mode."""
    return [(BY_KEY[key], stream) for stream in (False, True) for key in options.surfaces]


async def _check_and_warm(base_url: str, options: Options) -> None:
    """Each call kind answers as its surface should (a run that measured errors would be worthless), then
    a round's worth of calls of each, untimed: connections, first-call paths, the allocator's pools."""
    async with client.new_session() as session:
        for surface, stream in kinds(options):
            await client.call_once(session, base_url, surface, stream, surface.encoded(stream))
            warm = await client.closed_loop(
                session, base_url, surface, stream, options.concurrency, max(options.concurrency, options.requests // 4)
            )
            if warm.errors:
                raise RuntimeError(f"{surface.key} (stream={stream}) failed while warming up: {warm.errors[0]}")


async def measure_kind(
    session: aiohttp.ClientSession, base_url: str, pids: list[int], surface: Surface, stream: bool, options: Options
) -> cpu.Sample:
    """`options.requests` calls of one kind, and the gateway's CPU (and the rest of the machine's) meanwhile."""
    noise_before = await asyncio.to_thread(interference.snapshot)
    before, started = await asyncio.to_thread(cpu.read, pids), time.perf_counter()
    calls = await client.closed_loop(session, base_url, surface, stream, options.concurrency, options.requests)
    wall = time.perf_counter() - started
    after = await asyncio.to_thread(cpu.read, pids)
    noise = interference.between(noise_before, await asyncio.to_thread(interference.snapshot))
    one = cpu.sample(before, after, options.requests, wall, len(calls.errors))
    one.others_pct = round(noise.other_cpu_pct + noise.steal_pct, 1)
    if calls.errors:
        say(f"    first error: {calls.errors[0][:300]}")
    return one


async def measure_cpu(base_url: str, pids: list[int], options: Options, budget: QuietBudget, result: Result) -> None:
    rows = {(surface.key, stream): cpu.CpuRow(surface.key, stream) for surface, stream in kinds(options)}
    order = kinds(options)
    async with client.new_session() as session:
        for round_index in range(options.rounds):
            result.quiet.append(await budget.wait())
            shift = round_index % len(order)
            for surface, stream in order[shift:] + order[:shift]:
                one = await measure_kind(session, base_url, pids, surface, stream, options)
                rows[(surface.key, stream)].samples.append(one)
                say(
                    f"  round {round_index + 1} {surface.key:<15} {'stream' if stream else 'plain ':<6} "
                    f"{one.us_per_request:7.0f} µs/request (ticks: {one.stat_us_per_request:6.0f}), "
                    f"{one.requests / one.wall_s:5.1f} calls/s, others {one.others_pct:3.0f}%, errors {one.errors}"
                )
    result.cpu_rows = list(rows.values())
    cpu.summarize(result.cpu_rows)


async def measure_pacing(base_url: str, options: Options, budget: QuietBudget, result: Result) -> None:
    result.quiet.append(await budget.wait())
    async with client.new_session() as session:
        for key in options.surfaces:
            surface = BY_KEY[key]
            calls = await client.closed_loop(session, base_url, surface, True, 1, options.pacing_streams)
            figures = pacing.summarize(key, calls.streams, calls.errors)
            result.pacing.append(figures)
            say(
                f"  pacing {key:<15} gap p50 {figures.gap_p50_ms:.2f} ms p99 {figures.gap_p99_ms:.2f} ms, "
                f"bunched {figures.bunched_pct:.1f}%, events {figures.events_mean:.0f}, errors {figures.errors}"
            )


async def profile_all(base_url: str, pid: int, options: Options, result: Result) -> None:
    started = files.utc_now()
    chat: dict[bool, Counter[str]] = {}
    for surface, stream in kinds(options):  # chat first in each mode
        calls = PROFILE_BATCHES * options.requests
        note, samples = await profile_kind(base_url, pid, surface, stream, options.concurrency, calls, started)
        if surface.key == "chat":
            chat[stream] = samples
        elif stream in chat:
            compare_to_chat(note, samples, chat[stream])
        result.profiles.append(note)
        say(f"  profile {note.kind}: {note.samples} samples, {note.translation_pct:.1f}% in gateway/surfaces/ "
            f"{note.error}")  # fmt: skip


async def run_benchmark(options: Options) -> Result:
    budget = QuietBudget(options.quiet_wait_s, say, max_load=None, pattern=BUSY_PATTERN)
    result = Result(version=gateway_version())
    with tempfile.TemporaryDirectory(prefix="llm-gateway-surfaces-") as tmp:
        workdir = Path(tmp)
        sim_port, port = free_port(), free_port()
        say(f"starting the simulator on port {sim_port} ({REPLY_TOKENS} tokens, {PACE_S * 1000:.0f} ms apart)")
        pace = ["--itl", str(PACE_S), "--reply-tokens", str(REPLY_TOKENS), str(REPLY_TOKENS)]
        simulator = await gateway.start_simulator(
            "simulator", sim_port, workdir, pace, models=UPSTREAM_MODELS, ready_path="/v1/models"
        )
        try:
            catalog = await asyncio.to_thread(gateway.write_catalog, workdir, sim_port)
            say(f"starting the gateway on port {port} (open mode, cache off)")
            child = await gateway.start_gateway(
                workdir, catalog, port, extra_env=configs.CONFIGS["bare"].environment(1)
            )
            try:
                base_url = f"http://{LOOPBACK}:{port}"
                pids = await asyncio.to_thread(proc_stats.process_tree, child.pid)
                result.gateway_processes = len(pids)
                await _check_and_warm(base_url, options)
                await measure_cpu(base_url, pids, options, budget, result)
                await measure_pacing(base_url, options, budget, result)
                if options.profile:
                    await profile_all(base_url, child.pid, options, result)
            finally:
                await procs.stop_or_say(child, say)
            if options.instructions:
                result.instructions = await instructions.measure(workdir, catalog, kinds(options), options.instructions)
        finally:
            await procs.stop_or_say(simulator, say)
    return result
