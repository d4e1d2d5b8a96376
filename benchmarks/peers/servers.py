"""The peers started in front of an upstream, and each measured in turn: LiteLLM's proxy (one worker,
a master key) and Portkey's gateway (the provider and its address in request headers). Both point at an
OpenAI-compatible upstream given by its base URL (`http://127.0.0.1:PORT/v1`) and serve the model
`bench` (the name chat.lua and the streaming client send). Installing them: install.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from benchmarks.harness import procs
from benchmarks.peers.install import LITELLM_MASTER_KEY, PeerUnavailable, litellm_venv, portkey_package
from testkit.loopback import LOOPBACK, free_port

MODEL = "bench"
UPSTREAM_MODEL = "bench-upstream"
STARTUP_TIMEOUT_S = 120.0


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
        return f"http://{LOOPBACK}:{self.port}/v1/chat/completions"



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
    port = free_port()
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
        str(venv_bin / "litellm"), "--config", str(config), "--host", LOOPBACK, "--port", str(port),
        "--num_workers", "1",
    ]  # fmt: skip
    ready = f"http://{LOOPBACK}:{port}/health/liveliness"
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
    port = free_port()
    argv = [node, str(portkey_package() / "build" / "start-server.js"), f"--port={port}", "--headless"]
    env = _peer_environment({"NODE_ENV": "production"})
    ready = f"http://{LOOPBACK}:{port}/"
    child = await procs.start_ready(
        "portkey", argv, workdir / "portkey.log", ready, env=env, cwd=workdir, timeout_s=STARTUP_TIMEOUT_S
    )
    peer = Peer("portkey", f"Portkey gateway {version}", version, port, portkey_headers(upstream_base_url), child)
    peer.notes.append("listens on all interfaces (start-server.js has no host option); requests go to 127.0.0.1")
    return peer


PORTKEY_STREAM_FAILURE = "TypeError: immutable"
"""In Portkey's log when it answers a stream with HTTP 500: a bug of Portkey 1.15.2 with
@hono/node-server, explained in benchmarks/peers/README.md ("Portkey's streams")."""
PORTKEY_STREAM_NOTE = (
    "Portkey 1.15.2 answers every streamed chat completion with HTTP 500 (`TypeError: immutable` in its "
    "log): a bug in Portkey with @hono/node-server, not in this setup; why: benchmarks/peers/README.md"
)


async def start(key: str, workdir: Path, upstream_base_url: str, version: str) -> Peer:
    if key == "litellm":
        return await start_litellm(workdir, upstream_base_url, version)
    if key == "portkey":
        return await start_portkey(workdir, upstream_base_url, version)
    raise ValueError(f"unknown peer {key!r}")


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
