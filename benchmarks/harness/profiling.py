"""Where a gateway's time goes: py-spy records it under load, and the samples are summed up.

`record` attaches `py-spy record --format raw` (folded stacks: one line per distinct stack and its
sample count) to a running process tree, with native frames (uvloop, httptools, msgspec, the
interpreter) unless told not to; the caller drives load meanwhile. py-spy counts only samples where a
thread was running, so the shares are of CPU time, not of wall time. `summarize` turns the stacks into
the functions and packages that used the CPU: *self* is time in the function itself, *total* time in
it or anything it called.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness.files import REPO
from benchmarks.harness.gateway import VENV_BIN

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<where>[^()]*)\)$")
_LINE = re.compile(r":\d+$")
_SITE = re.compile(r".*/(?:site|dist)-packages/")
_STDLIB = re.compile(r".*/lib/python3\.\d+/")
_PROCESS = re.compile(r"^process \d+:")


def py_spy_binary() -> str:
    local = VENV_BIN / "py-spy"
    found = str(local) if local.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy not found: pip install -e '.[bench]' (or pip install py-spy)")
    return found


@dataclass(slots=True)
class Recording:
    path: Path
    error: str = ""
    """Why nothing was recorded (py-spy failed to attach, or wrote nothing)."""


@contextlib.asynccontextmanager
async def record(pid: int, path: Path, *, native: bool = True, rate: int = 100) -> AsyncIterator[Recording]:
    """py-spy on `pid` and its subprocesses while the body runs; folded stacks in `path` afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [py_spy_binary(), "record", "--pid", str(pid), "--subprocesses", "--rate", str(rate)]
    argv += ["--format", "raw", "--output", str(path), *(["--native"] if native else [])]
    log = path.with_suffix(".log")
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    recording = Recording(path)
    try:
        await asyncio.sleep(0.5)  # attached before the load starts
        yield recording
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    if not await asyncio.to_thread(_has_samples, path):
        said = await asyncio.to_thread(log.read_text, errors="replace")
        recording.error = f"py-spy wrote no samples (exit {proc.returncode}): {said[-500:]}"
    else:
        await asyncio.to_thread(log.unlink, missing_ok=True)


def _has_samples(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


_GATEWAY_FILES = {
    path.name: path.parts[0]
    for base in ("gateway", "routing")
    for path in (p.relative_to(REPO) for p in (REPO / base).rglob("*.py"))
}
"""File names of the project's modules (py-spy sometimes shows a module by its file name alone)."""
_NATIVE_WHERE = re.compile(r"(\.so[.\d]*|\.(c|h|cc|cpp|pyx):\d+)$")
IDLE = ("epoll_wait", "epoll_pwait", "select", "poll", "kevent")
"""Native leaf functions that mean the event loop was waiting: left out of the shares."""


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    return (frame, "") if match is None else (match.group("name"), match.group("where"))


def is_python(frame: str) -> bool:
    """A Python frame (`name (file.py:line)`), not a native one (`name (libc.so.6)`, `name (loop.c:123)`)."""
    _, where = _split(frame)
    return bool(where) and _NATIVE_WHERE.search(where) is None


def _short(where: str) -> str:
    where = _LINE.sub("", where)
    where = _SITE.sub("", where)
    where = _STDLIB.sub("", where)
    return where.replace(str(REPO) + "/", "")


def function(frame: str) -> str:
    """`name (file:line)` -> `name (short/file)`: one entry per function, paths relative to their package."""
    name, where = _split(frame)
    return f"{name} ({_short(where)})" if where else name


def package(frame: str) -> str:
    """What a frame belongs to: a top-level Python package (`litestar`, `gateway`, `asyncio`), or for a
    native frame its library (`libc.so.6`) or C file (`loop.c`)."""
    _, where = _split(frame)
    if not where:
        return "?"
    if not is_python(frame):
        return _LINE.sub("", where).split("/")[-1]
    short = _short(where)
    if "/" in short:
        return short.split("/")[0]
    return _GATEWAY_FILES.get(short, short.removesuffix(".py"))


@dataclass(slots=True)
class Summary:
    samples: int = 0
    """Samples where the gateway was running (idle ones left out)."""
    idle_samples: int = 0
    self_pct: list[tuple[str, float]] = field(default_factory=list)
    """By the innermost Python function of each sample (native code it called included)."""
    total_pct: list[tuple[str, float]] = field(default_factory=list)
    package_self_pct: list[tuple[str, float]] = field(default_factory=list)
    """By the package of the innermost Python function."""
    native_leaf_pct: list[tuple[str, float]] = field(default_factory=list)
    """By the native function the sample was in, when it was in one (system calls, the interpreter)."""


def stacks(folded: str) -> list[tuple[list[str], int]]:
    """Parsed folded stacks (root first), without py-spy's `process N:"cmd"` frame."""
    out = []
    for line in folded.splitlines():
        text, _, count = line.rpartition(" ")
        if not text or not count.isdigit():
            continue
        frames = [f for f in text.split(";") if f and not _PROCESS.match(f)]
        if frames:
            out.append((frames, int(count)))
    return out


def is_idle(frames: list[str]) -> bool:
    return _split(frames[-1])[0] in IDLE


def summarize(folded: str, top: int = 25) -> Summary:
    busy = [(frames, count) for frames, count in stacks(folded) if not is_idle(frames)]
    idle = sum(count for frames, count in stacks(folded) if is_idle(frames))
    samples = sum(count for _, count in busy)
    if samples == 0:
        return Summary(idle_samples=idle)
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    native: Counter[str] = Counter()
    for frames, count in busy:
        python = [frame for frame in frames if is_python(frame)]
        innermost = python[-1] if python else frames[-1]
        own[function(innermost)] += count
        packages[package(innermost)] += count
        if not is_python(frames[-1]):
            native[function(frames[-1])] += count
        for name in {function(frame) for frame in python}:
            total[name] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100.0 * n / samples, 1)) for name, n in counter.most_common(top)]

    below_root = Counter({name: n for name, n in total.items() if n < samples})  # not the process's own frames
    return Summary(samples, idle, shares(own), shares(below_root), shares(packages), shares(native))


def markdown(summary: Summary, title: str, flamegraph: str, folded: str) -> str:
    if summary.samples == 0:
        return f"### {title}\n\nNo samples.\n"

    def rows(items: list[tuple[str, float]]) -> list[str]:
        return [f"| {pct:.1f} | `{name.replace('|', '/')}` |" for name, pct in items]

    return "\n".join(
        [
            f"### {title}",
            "",
            f"{summary.samples:,} samples while the gateway ran (py-spy, native frames included; "
            f"{summary.idle_samples:,} samples of the event loop waiting left out); flame graph `{flamegraph}`, "
            f"folded stacks `{folded}` (raw, left in the runs folder; speedscope.app opens them).",
            "",
            "CPU time by package (of the innermost Python function, native code it called included):",
            "",
            "| % | package |",
            "|---:|---|",
            *rows(summary.package_self_pct[:12]),
            "",
            "Functions by self time (innermost Python function, native code it called included):",
            "",
            "| % | function |",
            "|---:|---|",
            *rows(summary.self_pct[:20]),
            "",
            "Functions by total time (the function and what it called):",
            "",
            "| % | function |",
            "|---:|---|",
            *rows(summary.total_pct[:25]),
            "",
            "Native functions the samples were in (system calls, the interpreter, uvloop):",
            "",
            "| % | function |",
            "|---:|---|",
            *rows(summary.native_leaf_pct[:12]),
            "",
        ]
    )
