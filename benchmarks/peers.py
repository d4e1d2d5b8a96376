"""Other gateways measured beside this one: install, start and stop LiteLLM's proxy and Portkey's gateway.

Both are installed outside the repository, in a cache directory (`LLM_GATEWAY_PEERS_DIR`, default
`/tmp/llm-gateway-bench`): LiteLLM in its own virtualenv (`litellm[proxy]` pinned to `LITELLM_VERSION`),
Portkey with `npm install --prefix`. An install that fails (no network, a build error) raises
`PeerUnavailable` with the reason, which the benchmarks record and then go on without that peer.

Both point at an OpenAI-compatible upstream given by its base URL (`http://127.0.0.1:PORT/v1`) and serve
the model `bench` (the name chat.lua and the streaming client send).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from benchmarks import procs

PEERS_DIR = Path(os.environ.get("LLM_GATEWAY_PEERS_DIR") or Path(tempfile.gettempdir()) / "llm-gateway-bench")

LITELLM_VERSION = "1.106.2"
"""Pinned: the version `pip install 'litellm[proxy]'` gave when this benchmark was written."""
LITELLM_MASTER_KEY = "sk-bench-key"
"""LiteLLM requires its master key to start with `sk-`, so `bench-key` (chat.lua's) is not accepted."""

PORTKEY_VERSION = "1.15.2"
"""`@portkey-ai/gateway` from npm, the version performance.md measured."""

MODEL = "bench"
UPSTREAM_MODEL = "bench-upstream"
INSTALL_TIMEOUT_S = 900.0
STARTUP_TIMEOUT_S = 120.0


class PeerUnavailable(RuntimeError):
    """A peer could not be installed or started; the message says why."""


@dataclass(slots=True)
class Peer:
    """A running peer gateway: where to send chat completions, with which headers."""

    key: str
    name: str
    version: str
    port: int
    headers: dict[str, str]
    child: procs.Child
    notes: list[str] = field(default_factory=list)

    @property
    def chat_url(self) -> str:
        return f"http://{procs.LOOPBACK}:{self.port}/v1/chat/completions"


# --- installs --------------------------------------------------------------------------------------


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


def _portkey_package() -> Path:
    return portkey_dir() / "node_modules" / "@portkey-ai" / "gateway"


def _installed_portkey_version() -> str | None:
    try:
        data = json.loads((_portkey_package() / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


async def install_portkey(version: str = PORTKEY_VERSION) -> str:
    """`npm install --prefix DIR @portkey-ai/gateway@version` (kept between runs); the installed version."""
    if _installed_portkey_version() == version and (_portkey_package() / "build" / "start-server.js").exists():
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


# --- starting them ---------------------------------------------------------------------------------


def litellm_config(upstream_base_url: str) -> str:
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{UPSTREAM_MODEL}\n"
        f"      api_base: {upstream_base_url}\n"
        "      api_key: x\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _peer_environment(extra: Mapping[str, str]) -> dict[str, str]:
    # No proxies (everything is on loopback) and none of the project's own mode variables.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("VIRTUAL_ENV")}
    env.update(extra)
    return env


async def start_litellm(workdir: Path, upstream_base_url: str, version: str) -> Peer:
    """LiteLLM's proxy (one worker) serving `bench` from the upstream, with a master key."""
    config = workdir / "litellm.yaml"
    await asyncio.to_thread(_write, config, litellm_config(upstream_base_url))
    port = procs.free_port()
    venv_bin = litellm_venv() / "bin"
    env = _peer_environment(
        {
            "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map from the network
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
        }
    )
    argv = [
        str(venv_bin / "litellm"), "--config", str(config), "--host", procs.LOOPBACK, "--port", str(port),
        "--num_workers", "1",
    ]  # fmt: skip
    ready = f"http://{procs.LOOPBACK}:{port}/health/liveliness"
    child = await procs.start_ready(
        "litellm", argv, workdir / "litellm.log", ready, env=env, cwd=workdir, timeout_s=STARTUP_TIMEOUT_S
    )
    headers = {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}
    return Peer("litellm", f"LiteLLM proxy {version}", version, port, headers, child)


def portkey_headers(upstream_base_url: str) -> dict[str, str]:
    """Portkey's open-source gateway takes the provider and its address from request headers."""
    return {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream_base_url,
        "Authorization": "Bearer x",
    }


async def start_portkey(workdir: Path, upstream_base_url: str, version: str) -> Peer:
    """Portkey's gateway (`node build/start-server.js --port=P --headless`)."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("node not found")
    port = procs.free_port()
    argv = [node, str(_portkey_package() / "build" / "start-server.js"), f"--port={port}", "--headless"]
    env = _peer_environment({"NODE_ENV": "production"})
    ready = f"http://{procs.LOOPBACK}:{port}/"
    child = await procs.start_ready(
        "portkey", argv, workdir / "portkey.log", ready, env=env, cwd=workdir, timeout_s=STARTUP_TIMEOUT_S
    )
    peer = Peer("portkey", f"Portkey gateway {version}", version, port, portkey_headers(upstream_base_url), child)
    peer.notes.append("listens on all interfaces (start-server.js has no host option); requests go to 127.0.0.1")
    return peer


PORTKEY_STREAM_FAILURE = "TypeError: immutable"
PORTKEY_STREAM_CAUSE = (
    "Portkey 1.15.2 answers every streamed chat completion with HTTP 500 (`TypeError: immutable` in its "
    "log), whatever the headers or config: a bug in Portkey with @hono/node-server, not in this setup. "
    "Its stream handler wraps the upstream `fetch()` answer as `new Response(stream, upstreamResponse)` "
    "(handleStreamingMode), then appends its own headers (`x-portkey-trace-id`, ...) in "
    "ResponseService.updateHeaders. @hono/node-server (1.19.x) replaces the global `Response` with a "
    "lightweight class whose constructor keeps `init.headers` by reference instead of copying it, so the "
    "new response shares the fetch answer's headers, which fetch made immutable, and the append throws "
    "(`new Response(s, fetched).headers.append(...)` reproduces it in Node 20 with hono's class, not "
    "with Node's own). Only the google, cohere and bedrock providers build fresh `Headers` there, and "
    "failing after-request hooks take another path that reuses the same headers, so no request header or "
    "gateway config avoids it; the fix is upstream (copy the headers). Non-streaming requests take a path "
    "that rebuilds the headers and work. Its stream loop also sleeps 25 ms before the first chunk it "
    "passes on (`setTimeout(..., 25)` in handleStreamingMode), which a fixed build's TTFT would show."
)
"""Why Portkey's streams fail (read in build/start-server.js of @portkey-ai/gateway 1.15.2 and
@hono/node-server's dist/index.mjs under the peers install directory)."""

PEER_KEYS = ("litellm", "portkey")


async def install(key: str) -> str:
    if key == "litellm":
        return await install_litellm()
    if key == "portkey":
        return await install_portkey()
    raise ValueError(f"unknown peer {key!r}")


async def start(key: str, workdir: Path, upstream_base_url: str, version: str) -> Peer:
    if key == "litellm":
        return await start_litellm(workdir, upstream_base_url, version)
    if key == "portkey":
        return await start_portkey(workdir, upstream_base_url, version)
    raise ValueError(f"unknown peer {key!r}")


# --- measuring each peer in a run ------------------------------------------------------------------


class PeerTarget(Protocol):
    """What a benchmark records about a peer (its `Target`): set here from the install and the start."""

    name: str
    version: str
    status: str
    notes: list[str]


TargetT = TypeVar("TargetT", bound=PeerTarget)


async def measure_each(
    installed: Mapping[str, str | Exception],
    workdir: Path,
    upstream_base_url: str,
    new_target: Callable[[str], TargetT],
    measure: Callable[[TargetT, Peer], Awaitable[None]],
    say: Callable[[str], None],
) -> list[TargetT]:
    """One target per peer of `installed` (key -> version, or the install's failure), in order: each peer
    that installed is started in front of the upstream, `measure(target, peer)`d, then stopped before the
    next one starts. A peer that did not install or start is recorded in its target's `status` (and the
    run goes on); `measure` records its own failures."""
    targets: list[TargetT] = []
    for key, got in installed.items():
        target = new_target(key)
        targets.append(target)
        if isinstance(got, Exception):
            target.status = f"install failed: {got}"
            continue
        target.version = got
        say(f"starting {key} {got}")
        try:
            peer = await start(key, workdir / key, upstream_base_url, got)
        except (RuntimeError, OSError) as exc:
            target.status = f"did not start: {exc}"
            say(f"  {target.status}")
            continue
        target.name, target.notes = peer.name, peer.notes
        try:
            await measure(target, peer)
        finally:
            await procs.stop_or_say(peer.child, say)
    return targets
