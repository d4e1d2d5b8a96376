"""The gateway under test: its catalog, keys, environment, and how each ASGI server starts it."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from benchmarks import procs

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ASGI_APP = "gateway.app.asgi:app"
API_KEY = "bench-key"
AUTH_HEADERS = {"Authorization": f"Bearer {API_KEY}"}

SERVERS = ("serve", "uvicorn", "granian")
"""`serve` is the default deployment (`llm-gateway serve`); the others run the same ASGI app."""

NEVER_REFUSING_LIMITS = {
    "requests_per_minute": 100_000_000,
    "tokens_per_minute": 10_000_000_000,
    "max_concurrent": 10_000,
}
"""High enough for any run: a 429 in a run with limits means these were too low, not a gateway fault.
The configurations that use them are in benchmarks/gateway_configs.py."""

# Variables that choose the gateway's mode: removed from the inherited environment so each
# configuration gets exactly the key sources and store it names.
_MODE_VARIABLES = (
    "LLM_API_KEY", "GATEWAY_ADMIN_KEY", "GATEWAY_KEYS_FILE", "REDIS_URL", "RATE_LIMIT_RPM", "GATEWAY_CACHE",
)  # fmt: skip

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


def write_keys_file(workdir: Path, *, limits: bool) -> Path:
    """A keys file with one user key for `API_KEY`; with `limits`, `NEVER_REFUSING_LIMITS` on it."""
    secret_hash = hashlib.sha256(API_KEY.encode()).hexdigest()
    lines = ["keys:", "  - id: key_bench", f"    secret_hash: {secret_hash}", "    scope: user"]
    if limits:
        lines.append("    limits:")
        lines.extend(f"      {name}: {value}" for name, value in NEVER_REFUSING_LIMITS.items())
    path = workdir / f"keys-{'limits' if limits else 'auth'}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def environment(
    catalog: Path,
    port: int,
    *,
    keys_file: Path | None = None,
    redis_url: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The gateway's environment: this one's, less the mode variables, plus the run's; `extra` last."""
    env = {name: value for name, value in os.environ.items() if name not in _MODE_VARIABLES}
    if keys_file is not None:
        env["GATEWAY_KEYS_FILE"] = str(keys_file)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    env.update(
        GATEWAY_CONFIG=str(catalog),
        GATEWAY_HOST=procs.LOOPBACK,
        GATEWAY_PORT=str(port),
        GATEWAY_WORKERS="1",
        GATEWAY_START_LOCAL_WORKERS="false",
        LOG_LEVEL="warning",
    )
    env.update(extra or {})
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
        entry = "import sys; from gateway.cli.entry import main; sys.exit(main())"
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


async def start_gateway(
    server: str,
    workdir: Path,
    catalog: Path,
    port: int,
    *,
    config: str = "bare",
    keys_file: Path | None = None,
    redis_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    label: str | None = None,
) -> procs.Child:
    """Start the gateway and wait until `GET /v1/models` answers 200 (with the bench key)."""
    label = label or f"{server}-{config}"
    return await procs.start_ready(
        f"gateway ({label})",
        argv(server, port),
        workdir / f"gateway-{label}.log",
        f"http://{procs.LOOPBACK}:{port}/v1/models",
        env=environment(catalog, port, keys_file=keys_file, redis_url=redis_url, extra=extra_env),
        cwd=ROOT,
        headers=AUTH_HEADERS,
        timeout_s=60.0,
    )
