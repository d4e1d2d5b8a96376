"""The upstream of the overhead and peers runs: nginx answering every chat completion with a fixed JSON
body, the fastest possible worker, so every millisecond above it is the gateway's."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from benchmarks.harness import procs
from testkit.loopback import LOOPBACK

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
CHAT_PATH = "/v1/chat/completions"

CHAT_COMPLETION: dict[str, object] = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1,
    "model": "bench-upstream",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"},
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}

CHAT_REQUEST: dict[str, object] = {
    "model": "bench",
    "messages": [{"role": "user", "content": "Say ok"}],
}
"""The request chat.lua sends (kept in step with it), used for readiness and sanity checks."""


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if found is None:
        raise RuntimeError("nginx not found: apt-get install -y nginx-light")
    return found


def render_conf(workdir: Path, port: int) -> str:
    body = json.dumps(CHAT_COMPLETION, separators=(",", ":"))
    if "'" in body or "$" in body:  # would end nginx's quoted string or start a variable
        raise ValueError("the fixed completion must not contain ' or $")
    return TEMPLATE.read_text().replace("@TMPDIR@", str(workdir)).replace("@PORT@", str(port)).replace("@BODY@", body)


def prepare(workdir: Path, port: int) -> list[str]:
    """Write the configuration under `workdir`; the command line that runs nginx with it."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(render_conf(workdir, port))
    return [nginx_binary(), "-e", str(workdir / "error.log"), "-p", str(workdir), "-c", str(conf)]


async def start_nginx(workdir: Path, port: int) -> procs.Child:
    """Start nginx in the foreground with everything (conf, pid, temp, logs) under `workdir`."""
    argv = await asyncio.to_thread(prepare, workdir, port)
    child = await procs.start("nginx", argv, workdir / "nginx.out")
    try:
        response = await procs.wait_until_ready(
            child, f"http://{LOOPBACK}:{port}{CHAT_PATH}", method="POST", json_body=CHAT_REQUEST
        )
        if response.json() != CHAT_COMPLETION:
            raise RuntimeError(f"nginx answered an unexpected body: {response.text[:500]}")
    except BaseException:
        await child.stop()
        raise
    return child
