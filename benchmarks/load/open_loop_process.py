"""The open-loop generator (open_loop.py) run in a process of its own, so that its CPU is its own and the
caller's event loop stays free, and its figures read back from the line it prints."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict, dataclass

from benchmarks.load.open_loop import MARKER


@dataclass(frozen=True, slots=True)
class OpenLoopResult:
    rate: float
    duration_s: float
    sent: int
    completed: int
    achieved_rate: float
    latency_ms: dict[str, float]
    """Percentiles (p50 ... p100) from each request's due time to its answer: coordinated-omission free."""
    service_ms: dict[str, float]
    """The same from when each request actually left."""
    send_lag_ms: dict[str, float]
    """How late requests left against their due time: the generator's own share."""
    errors: dict[str, int]
    connections_opened: int
    max_in_flight: int
    generator_cpu_s: float

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def p50_ms(self) -> float | None:
        return self.latency_ms.get("p50")

    @property
    def p99_ms(self) -> float | None:
        return self.latency_ms.get("p99")

    @property
    def keeps_up(self) -> bool:
        """Answered what was sent, at the rate asked (a saturated target falls behind and its queue grows)."""
        return self.error_count == 0 and self.completed >= 0.97 * self.sent

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_output(output: str) -> OpenLoopResult:
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise ValueError(f"no {MARKER.strip()} line in the generator's output:\n{output}")
    data = json.loads(lines[-1][len(MARKER) :])
    return OpenLoopResult(
        rate=float(data["rate"]),
        duration_s=float(data["duration_s"]),
        sent=int(data["sent"]),
        completed=int(data["completed"]),
        achieved_rate=float(data["achieved_rate"]),
        latency_ms={k: float(v) for k, v in data["latency_ms"].items()},
        service_ms={k: float(v) for k, v in data["service_ms"].items()},
        send_lag_ms={k: float(v) for k, v in data["send_lag_ms"].items()},
        errors={k: int(v) for k, v in data["errors"].items()},
        connections_opened=int(data["connections_opened"]),
        max_in_flight=int(data["max_in_flight"]),
        generator_cpu_s=float(data["generator_cpu_s"]),
    )


async def run(
    url: str,
    rate: float,
    duration_s: float,
    *,
    warmup_s: float = 1.0,
    workload: str = "plain",
    headers: dict[str, str] | None = None,
) -> OpenLoopResult:
    """The generator in its own process (so its CPU is its own, and the caller's loop stays free)."""
    argv = [sys.executable, "-m", "benchmarks.load.open_loop", url, "--rate", f"{rate:g}"]
    argv += ["--duration", f"{duration_s:g}", "--warmup", f"{warmup_s:g}", "--workload", workload]
    for name, value in (headers or {}).items():
        argv += ["--header", f"{name}: {value}"]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), warmup_s + duration_s + 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the open-loop generator exited with {proc.returncode}: {stderr.decode(errors='replace')}")
    return parse_output(stdout.decode(errors="replace"))
