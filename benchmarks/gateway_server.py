"""The gateway under test: its catalog, environment, and how each ASGI server starts it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmarks import procs

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ASGI_APP = "gateway.asgi:app"
API_KEY = "bench-key"
AUTH_HEADERS = {"Authorization": f"Bearer {API_KEY}"}

SERVERS = ("serve", "uvicorn", "granian")
"""`serve` is the default deployment (`llm-gateway serve`); the others run the same ASGI app."""

CATALOG = """\
models:
  - name: bench
routing:
  default_model: bench
workers:
  - name: nginx
    kind: openai
    base_url: http://{host}:{port}/v1
    models:
      - name: bench
        upstream_id: bench-upstream
"""


def write_catalog(workdir: Path, nginx_port: int) -> Path:
    path = workdir / "catalog.yaml"
    path.write_text(CATALOG.format(host=procs.LOOPBACK, port=nginx_port))
    return path


def environment(catalog: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GATEWAY_CONFIG=str(catalog),
        GATEWAY_HOST=procs.LOOPBACK,
        GATEWAY_PORT=str(port),
        GATEWAY_WORKERS="1",
        GATEWAY_START_LOCAL_WORKERS="false",
        LOG_LEVEL="warning",
    )
    return env


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install it into the virtualenv ({BIN.parent})")
    return str(path)


def argv(server: str, port: int) -> list[str]:
    """The command line that serves the gateway on `port` with `server`."""
    if server == "serve":
        script = BIN / "llm-gateway"
        if script.exists():
            return [str(script), "serve"]
        # Not installed as a console script yet: the same entry point, from the source tree.
        entry = "import sys; from gateway.cli import main; sys.exit(main())"
        return [sys.executable, "-c", entry, "serve"]
    if server == "uvicorn":
        return [
            _tool("uvicorn"), ASGI_APP, "--host", procs.LOOPBACK, "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    if server == "granian":
        return [
            _tool("granian"), "--interface", "asgi", "--loop", "uvloop", "--host", procs.LOOPBACK,
            "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning", ASGI_APP,
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}: expected one of {', '.join(SERVERS)}")


async def start_gateway(server: str, workdir: Path, catalog: Path, port: int) -> procs.Child:
    """Start the gateway and wait until `GET /v1/models` answers 200."""
    child = await procs.start(
        f"gateway ({server})",
        argv(server, port),
        workdir / f"gateway-{server}.log",
        env=environment(catalog, port),
        cwd=ROOT,
    )
    try:
        await procs.wait_until_ready(
            child, f"http://{procs.LOOPBACK}:{port}/v1/models", headers=AUTH_HEADERS, timeout_s=60.0
        )
    except BaseException:
        await child.stop()
        raise
    return child
