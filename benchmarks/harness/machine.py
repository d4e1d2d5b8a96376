"""Where and with what a benchmark ran: cores, CPU model, kernel, Python, package and tool versions, and
the load average when it started (blocking: call it before the run's event loop, or in a thread)."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path


def command_version(argv: Sequence[str]) -> str:
    """The first line a `--version`-like command prints (without a copyright notice)."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].split("Copyright")[0].strip() if text else "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(
    *, tools: Mapping[str, Sequence[str]] | None = None, packages: Sequence[str] = ()
) -> dict[str, object]:
    """The machine, the versions of `packages` (installed distributions) and of each tool (name ->
    the command that prints its version), and the load average now."""
    info: dict[str, object] = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    if packages:
        info["packages"] = {name: package_version(name) for name in packages}
    for name, argv in (tools or {}).items():
        info[name] = command_version(argv)
    info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info
