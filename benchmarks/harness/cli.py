"""Command-line plumbing shared by the benchmark suites: comma-separated lists as argparse types, progress
lines on stderr, a run that SIGTERM cancels, and a main's run with its exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TypeVar

T = TypeVar("T")


def say(text: str) -> None:
    """A progress line, on stderr (stdout carries the tables)."""
    print(text, file=sys.stderr, flush=True)


def say_timed(text: str) -> None:
    """A progress line with the time of day in front, for runs that last an hour (the soak)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def number_list(text: str) -> list[int]:
    """argparse type: `1,8,32` -> [1, 8, 32] (sorted, without repeats, each at least 1)."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers")
    return values


def name_list(text: str, known: Sequence[str], what: str) -> list[str]:
    """argparse type body: `a,b` -> the names, in `known`'s order; unknown ones are a usage error."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown {what} {unknown}, expected names from {','.join(known)}")
    return [name for name in known if name in names]


async def run_cancellable(coro: Coroutine[object, object, T]) -> T:
    """Await `coro` with SIGTERM cancelling it (so the `finally` blocks stop every child)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await coro
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


def run(coro: Coroutine[object, object, T], say: Callable[[str], None]) -> T:
    """`asyncio.run(coro)`, SIGTERM cancelling it; exits (SystemExit, as argparse does on a usage error)
    with 130 on Ctrl-C or SIGTERM, once every child is stopped, and with 1 on a RuntimeError, saying why."""
    try:
        return asyncio.run(run_cancellable(coro))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: every process started was stopped")
        raise SystemExit(130) from None
    except RuntimeError as exc:
        say(f"benchmark failed: {exc}")
        raise SystemExit(1) from None
