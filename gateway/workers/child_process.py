"""A local worker's process: out of reach of the signals meant for the gateway, tied to the gateway's life,
and stopped within a bound.

- **A session of its own** (`start_new_session`). A signal to the gateway's process group (Ctrl-C in a
  terminal, `kill -TERM -<pgid>`, supervisors that signal the group) reaches the gateway alone. The
  gateway then drains its requests (streams finish on the worker) and stops its workers itself; a worker
  that got the signal too would die under the streams still draining, and its supervisor would see a
  crash.
- **Dies with the gateway** (Linux): a gateway killed without stopping its workers (SIGKILL, a crash) has
  the kernel kill them too, through `prctl(PR_SET_PDEATHSIG)`. The kernel sends that signal when the
  *thread* that started the child ends, so the supervisor starts its workers from the thread that runs it
  for as long as they run (the server's event loop, or the supervisor's own thread when the server runs
  several processes).
- **Stopped within a bound**: SIGTERM to the worker's process group, SIGKILL after `STOP_GRACE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 1.5
"""How long a worker gets to exit after SIGTERM before it is killed. The gateway stops its workers while
its server shuts down (after the drain deadline), so it exits within about drain + this, at worst; a
server that finishes the generation under way before it exits (llama-cpp-python's) is cut short here."""


async def start_child(command: Sequence[str], output: BinaryIO) -> asyncio.subprocess.Process:
    """Start `command` in a session of its own, with stdout and stderr to `output`, to die with this process."""
    return await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True,
        preexec_fn=_die_with_parent())


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before its command on Linux: ask the kernel for SIGKILL when its parent dies (and
    exit at once if the parent is already gone). None where prctl is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_the_child() -> None:
        prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL))
        if os.getppid() != parent:  # the parent died before the death signal was set
            os._exit(1)

    return in_the_child


async def stop_child(process: asyncio.subprocess.Process, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the child's process group (the child and anything it started), SIGKILL after `grace_s`."""
    if process.returncode is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace_s)
    except TimeoutError:
        _signal_group(process, signal.SIGKILL)
        await process.wait()


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    """The child leads its own group (its session's): signal the group while the child is not yet reaped,
    so its id cannot have been reused; the child alone if the group is already gone."""
    if process.returncode is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
