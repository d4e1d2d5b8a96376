"""The other gateways measured beside this one, installed outside the repository in a cache directory
(`LLM_GATEWAY_PEERS_DIR`, default `/tmp/llm-gateway-bench`): LiteLLM's proxy in its own virtualenv
(`litellm[proxy]` pinned to `LITELLM_VERSION`), Portkey's gateway with `npm install --prefix`. An install
that fails (no network, a build error) raises `PeerUnavailable` with the reason, which the suites record
before going on without that peer. Starting them: servers.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from benchmarks.harness import procs

PEERS_DIR = Path(os.environ.get("LLM_GATEWAY_PEERS_DIR") or Path(tempfile.gettempdir()) / "llm-gateway-bench")

LITELLM_VERSION = "1.106.2"
"""Pinned: the version `pip install 'litellm[proxy]'` gave when this benchmark was written."""
LITELLM_MASTER_KEY = "sk-bench-key"
"""LiteLLM requires its master key to start with `sk-`, so `bench-key` (chat.lua's) is not accepted."""

PORTKEY_VERSION = "1.15.2"
"""`@portkey-ai/gateway` from npm, the version performance.md measured."""

INSTALL_TIMEOUT_S = 900.0


class PeerUnavailable(RuntimeError):
    """A peer could not be installed or started; the message says why."""


async def _run(argv: list[str], log_path: Path, timeout_s: float, env: Mapping[str, str] | None = None) -> None:
    """Run a command to completion, its output appended to `log_path`; raise PeerUnavailable on failure."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = (await procs.start(Path(argv[0]).name, argv, log_path, env=env)).proc
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise PeerUnavailable(f"`{' '.join(argv)}` did not finish in {timeout_s:.0f} s (log: {log_path})") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        text = await asyncio.to_thread(log_path.read_text, errors="replace")
        tail = "\n".join(text.splitlines()[-15:])
        raise PeerUnavailable(f"`{' '.join(argv)}` exited with {proc.returncode} (log: {log_path}):\n{tail}")


def litellm_venv() -> Path:
    return PEERS_DIR / "litellm-venv"


async def _venv_package_version(python: Path, package: str) -> str | None:
    if not await asyncio.to_thread(python.exists):
        return None
    proc = await asyncio.create_subprocess_exec(
        str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
    return stdout.decode().strip() or None if proc.returncode == 0 else None


async def install_litellm(version: str = LITELLM_VERSION) -> str:
    """`litellm[proxy]==version` in its own virtualenv (kept between runs); the installed version."""
    venv = litellm_venv()
    python = venv / "bin" / "python"
    if await _venv_package_version(python, "litellm") == version and (venv / "bin" / "litellm").exists():
        return version
    log = PEERS_DIR / "litellm-install.log"
    if not python.exists():
        await _run([sys.executable, "-m", "venv", str(venv)], log, 120)
    await _run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", f"litellm[proxy]=={version}"],
        log,
        INSTALL_TIMEOUT_S,
    )
    installed = await _venv_package_version(python, "litellm")
    if installed is None:
        raise PeerUnavailable(f"litellm is not importable in {venv} after the install (log: {log})")
    return installed


def portkey_dir() -> Path:
    return PEERS_DIR / "portkey"


def portkey_package() -> Path:
    return portkey_dir() / "node_modules" / "@portkey-ai" / "gateway"


def _installed_portkey_version() -> str | None:
    try:
        data = json.loads((portkey_package() / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


async def install_portkey(version: str = PORTKEY_VERSION) -> str:
    """`npm install --prefix DIR @portkey-ai/gateway@version` (kept between runs); the installed version."""
    if _installed_portkey_version() == version and (portkey_package() / "build" / "start-server.js").exists():
        return version
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise PeerUnavailable("node/npm not found: Portkey's gateway needs Node.js")
    log = PEERS_DIR / "portkey-install.log"
    portkey_dir().mkdir(parents=True, exist_ok=True)
    await _run(
        [npm, "install", "--prefix", str(portkey_dir()), "--no-audit", "--no-fund", f"@portkey-ai/gateway@{version}"],
        log,
        INSTALL_TIMEOUT_S,
    )
    installed = _installed_portkey_version()
    if installed is None:
        raise PeerUnavailable(f"@portkey-ai/gateway is missing under {portkey_dir()} after the install (log: {log})")
    return installed


PEER_KEYS = ("litellm", "portkey")


async def install(key: str) -> str:
    if key == "litellm":
        return await install_litellm()
    if key == "portkey":
        return await install_portkey()
    raise ValueError(f"unknown peer {key!r}")


async def install_all(names: list[str], say: Callable[[str], None]) -> dict[str, str | Exception]:
    """Version installed, or the failure, per peer (installs run one after the other)."""
    out: dict[str, str | Exception] = {}
    for name in names:
        say(f"installing {name} (cached under {PEERS_DIR})")
        try:
            out[name] = await install(name)
        except (PeerUnavailable, OSError) as exc:
            say(f"  {name} unavailable: {exc}")
            out[name] = exc
    return out
