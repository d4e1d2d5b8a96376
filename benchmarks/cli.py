"""Command-line plumbing shared by the benchmark runners (overhead, peers_bench, streaming_bench, soak):
comma-separated number lists as argparse types, a run that SIGTERM cancels, and a main's run with its exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import TypeVar

T = TypeVar("T")


def number_list(text: str) -> list[int]:
    """argparse type: `1,8,32` -> [1, 8, 32] (sorted, without repeats, each at least 1)."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers")
    return values


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
