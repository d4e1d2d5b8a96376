"""The gateway's CPU per call in instructions (`--instructions`): wall-clock CPU on a shared 2-core box
moves by tens of percent from round to round, instruction counts barely do.

A second `llm-gateway serve` runs under valgrind's callgrind (the overhead suite's command line and fixed
hash seed, benchmarks/overhead/instructions.py), in front of the same simulator. After a few calls of
each kind to warm it, two passes over the call kinds (the second in reverse order), each kind in turn:
its counters zeroed (`callgrind_control -z`), its calls sent, its counters dumped (`callgrind_control
-d`); the dump's total over the calls is the pass's figure, the passes' mean the kind's. The event
loop waiting costs no instructions, so what the dump holds is the calls' work (and the odd timer)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import configs, gateway, procs
from benchmarks.harness.cli import say
from benchmarks.overhead.instructions import HASH_SEED, READY_TIMEOUT_S, STOP_GRACE_S, total_instructions, valgrind_argv
from benchmarks.surfaces import client
from benchmarks.surfaces.calls import BY_KEY, Surface
from testkit.loopback import LOOPBACK, free_port

WARMUP_CALLS = 3
CONCURRENCY = 4


@dataclass(slots=True)
class InstructionRow:
    surface: str
    stream: bool
    calls: int
    """Per pass."""
    passes: list[float] = field(default_factory=list)
    """Instructions per call of each pass (the second pass goes through the kinds in reverse order)."""
    per_call: float = 0.0
    """The passes' mean."""
    ratio_to_chat: float | None = None
    errors: int = 0


def ratios(rows: list[InstructionRow]) -> None:
    """Each row's mean over its passes, and that over chat's in the same mode (pure)."""
    for row in rows:
        row.per_call = round(sum(row.passes) / len(row.passes)) if row.passes else 0.0
    for row in rows:
        chat = next((r for r in rows if r.surface == "chat" and r.stream == row.stream), None)
        if chat is not None and chat.per_call:
            row.ratio_to_chat = round(row.per_call / chat.per_call, 3)


async def _control(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "callgrind_control", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)} failed: {err.decode(errors='replace')[-300:]}")


def _newest_dump(out_file: Path) -> Path:
    dumps = [p for p in out_file.parent.glob(out_file.name + ".*") if p.suffix[1:].isdigit()]
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump beside {out_file}")
    return max(dumps, key=lambda p: int(p.suffix[1:]))


async def _count(base_url: str, pid: int, out_file: Path, row: InstructionRow) -> None:
    """One pass of `row`'s kind: its calls between a zeroing and a dump of the counters."""
    surface = BY_KEY[row.surface]
    async with client.new_session() as session:
        await _control("-z", str(pid))
        seen = await client.closed_loop(session, base_url, surface, row.stream, CONCURRENCY, row.calls)
        await _control("-d", f"{row.surface}-{'stream' if row.stream else 'plain'}", str(pid))
    total = await asyncio.to_thread(total_instructions, _newest_dump(out_file))
    row.passes.append(round(total / row.calls))
    row.errors += len(seen.errors)


async def measure(workdir: Path, catalog: Path, kinds: list[tuple[Surface, bool]], calls: int) -> list[InstructionRow]:
    """Instructions per call of each kind, from one gateway under callgrind (stopped on the way out)."""
    port = free_port()
    out_file = workdir / "callgrind.surfaces"
    env = gateway.environment(
        catalog, port, extra={**configs.CONFIGS["bare"].environment(1), "PYTHONHASHSEED": HASH_SEED}
    )
    say(f"starting a gateway under callgrind on port {port} (minutes)")
    child = await procs.start_ready(
        "gateway (callgrind)", valgrind_argv(out_file, port, gateway.WORKING_TREE), workdir / "gateway-callgrind.log",
        f"http://{LOOPBACK}:{port}/v1/models", env=env, cwd=gateway.WORKING_TREE.tree, headers=gateway.AUTH_HEADERS,
        timeout_s=READY_TIMEOUT_S,
    )  # fmt: skip
    rows = [InstructionRow(surface.key, stream, calls) for surface, stream in kinds]
    try:
        base_url = f"http://{LOOPBACK}:{port}"
        async with client.new_session() as session:
            for surface, stream in kinds:
                warm = await client.closed_loop(session, base_url, surface, stream, 1, WARMUP_CALLS)
                if warm.errors:
                    raise RuntimeError(f"{surface.key} under callgrind: {warm.errors[0]}")
        for order in (rows, rows[::-1]):
            for row in order:
                await _count(base_url, child.pid, out_file, row)
                mode = "stream" if row.stream else "plain "
                say(f"  callgrind {row.surface:<15} {mode:<6} {row.passes[-1]:12,.0f} Ir/call")
    finally:
        await child.stop(grace_s=STOP_GRACE_S)
    ratios(rows)
    return rows
