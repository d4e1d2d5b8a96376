"""The closed-loop load generator: wrk with a chat script (lua/chat.lua by default), its figures read
back from the JSON line the script's done() hook prints."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "lua" / "chat.lua"
MARKER = "WRK_JSON "
ERROR_KINDS = ("connect", "read", "write", "timeout", "non_2xx")


@dataclass(frozen=True, slots=True)
class WrkResult:
    concurrency: int
    duration_s: float
    requests: int
    requests_per_s: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    """Socket errors by kind, `timeout`, and `non_2xx` responses (counted by chat.lua)."""

    @property
    def error_count(self) -> int:
        return sum(self.errors.get(kind, 0) for kind in ERROR_KINDS)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    return found


def _number(table: dict[str, object], key: str) -> float:
    value = table.get(key)
    if not isinstance(value, int | float):
        raise ValueError(f"wrk stats: {key!r} is not a number: {value!r}")
    return float(value)


def _table(table: dict[str, object], key: str) -> dict[str, object]:
    value = table.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"wrk stats: {key!r} is not an object: {value!r}")
    return value


def parse_output(output: str, concurrency: int) -> WrkResult:
    """The WrkResult in wrk's stdout (the line chat.lua's done() prints)."""
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise ValueError(f"no {MARKER.strip()} line in wrk's output:\n{output}")
    stats = json.loads(lines[-1][len(MARKER) :])
    if not isinstance(stats, dict):
        raise ValueError(f"wrk stats are not an object: {stats!r}")
    latency = _table(stats, "latency_ms")
    errors = _table(stats, "errors")
    return WrkResult(
        concurrency=concurrency,
        duration_s=_number(stats, "duration_s"),
        requests=int(_number(stats, "requests")),
        requests_per_s=_number(stats, "requests_per_s"),
        mean_ms=_number(latency, "mean"),
        p50_ms=_number(latency, "p50"),
        p90_ms=_number(latency, "p90"),
        p99_ms=_number(latency, "p99"),
        max_ms=_number(latency, "max"),
        errors={kind: int(_number(errors, kind)) for kind in ERROR_KINDS},
    )


async def run(
    url: str,
    concurrency: int,
    duration_s: float,
    *,
    timeout_s: float = 5.0,
    script: Path | None = None,
    script_args: Sequence[str] = (),
) -> WrkResult:
    """`wrk -t1 -c<concurrency> -d<duration>s --latency -s <script> url -- <script_args>`, bounded in time.

    The script (default chat.lua, read when called) must print chat.lua's WRK_JSON line from done()."""
    argv = [
        wrk_binary(),
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
        "-s",
        str(script or SCRIPT),
        url,
        *(["--", *script_args] if script_args else []),
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), duration_s + timeout_s + 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {stderr.decode(errors='replace')}{output}")
    return parse_output(output, concurrency)
