"""The one way the benchmarks start the gateway (and the simulator, which is its `simulate` command):
its catalog, keys, environment, and the command line of each ASGI server.

The gateway always runs from a source tree (`Source`): this repository by default, or another checkout
(an older commit, for a side-by-side comparison). Its process gets `PYTHONPATH` and its working
directory set to that tree and runs `python -m gateway serve` with this virtualenv's interpreter, so
whatever is installed in the virtualenv, the code measured is the tree's.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import procs
from benchmarks.harness.files import REPO
from testkit.loopback import LOOPBACK

VENV_BIN = Path(sys.executable).parent
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
"""High enough for any run: a 429 in a run with limits means these were too low, not a gateway fault."""

# Variables that choose the gateway's mode: removed from the inherited environment so each
# configuration gets exactly the key sources and store it names (and a metrics directory of its own).
_MODE_VARIABLES = (
    "LLM_API_KEY", "GATEWAY_ADMIN_KEY", "GATEWAY_KEYS_FILE", "REDIS_URL", "RATE_LIMIT_RPM", "GATEWAY_CACHE",
    "PROMETHEUS_MULTIPROC_DIR",
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


@dataclass(frozen=True, slots=True)
class Source:
    """A source tree the gateway runs from, and what to call it in reports."""

    tree: Path = REPO
    label: str = "working tree"


WORKING_TREE = Source()


def python_command(*args: str) -> list[str]:
    """`python -m gateway ARGS` with this virtualenv's interpreter (the tree comes from `PYTHONPATH`)."""
    return [sys.executable, "-m", "gateway", *args]


def source_environment(source: Source, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (this process's environment by default) with `PYTHONPATH` set to the source tree alone."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = str(source.tree)
    return env


def imported_from(source: Source) -> Path:
    """Where `import gateway` resolves in the gateway's environment (blocking): a check that a run
    measures the tree it names, not the copy installed in the virtualenv."""
    done = subprocess.run(
        [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
        env=source_environment(source), cwd=source.tree, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"`import gateway` fails in {source.tree}: {done.stderr[-1000:]}")
    return Path(done.stdout.strip()).resolve()


def write_catalog(workdir: Path, nginx_port: int) -> Path:
    """The catalog of the nginx runs: the model `bench` on one `openai` worker, nginx."""
    path = workdir / "catalog.yaml"
    path.write_text(CATALOG.format(host=LOOPBACK, port=nginx_port))
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
    source: Source = WORKING_TREE,
) -> dict[str, str]:
    """The gateway's environment: this one's, less the mode variables, plus the run's; `extra` last."""
    env = {name: value for name, value in source_environment(source).items() if name not in _MODE_VARIABLES}
    if keys_file is not None:
        env["GATEWAY_KEYS_FILE"] = str(keys_file)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    env.update(
        GATEWAY_CONFIG=str(catalog),
        GATEWAY_HOST=LOOPBACK,
        GATEWAY_PORT=str(port),
        GATEWAY_WORKERS="1",
        GATEWAY_START_LOCAL_WORKERS="false",
        LOG_LEVEL="warning",
    )
    env.update(extra or {})
    return env


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install it into the virtualenv ({VENV_BIN.parent})")
    return str(path)


def argv(server: str, port: int, source: Source = WORKING_TREE) -> list[str]:
    """The command line that serves the gateway on `port` with `server`."""
    if server == "serve":
        return python_command("serve")
    if server == "uvicorn":
        return [
            _tool("uvicorn"), ASGI_APP, "--host", LOOPBACK, "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    if server == "granian":
        return [
            _tool("granian"), "--interface", "asgi", "--loop", "uvloop", "--host", LOOPBACK,
            "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning", ASGI_APP,
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}: expected one of {', '.join(SERVERS)}")


async def start_gateway(
    workdir: Path,
    catalog: Path,
    port: int,
    *,
    server: str = "serve",
    label: str = "gateway",
    keys_file: Path | None = None,
    redis_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    source: Source = WORKING_TREE,
    ready_path: str = "/v1/models",
    timeout_s: float = 60.0,
) -> procs.Child:
    """Start the gateway and wait until `ready_path` answers 200 (asked with the bench key); its log is
    `workdir/gateway-<label>.log`."""
    return await procs.start_ready(
        f"gateway ({label})",
        argv(server, port, source),
        workdir / f"gateway-{label}.log",
        f"http://{LOOPBACK}:{port}{ready_path}",
        env=environment(catalog, port, keys_file=keys_file, redis_url=redis_url, extra=extra_env, source=source),
        cwd=source.tree,
        headers=AUTH_HEADERS,
        timeout_s=timeout_s,
    )


async def start_simulator(
    name: str,
    port: int,
    workdir: Path,
    options: list[str],
    *,
    models: tuple[str, ...],
    ready_path: str = "/health",
    timeout_s: float = 60.0,
) -> procs.Child:
    """`llm-gateway simulate --kind vllm` on `port` serving `models`, with `options` (the simulator's
    flags: pace, reply lengths, KV cache...), from this tree; ready once `ready_path` answers 200."""
    argv = python_command("simulate", "--kind", "vllm", "--host", LOOPBACK, "--port", str(port))
    for model in models:
        argv += ["--model", model]
    return await procs.start_ready(
        name, [*argv, *options], workdir / f"{name}.log", f"http://{LOOPBACK}:{port}{ready_path}",
        env=source_environment(WORKING_TREE), cwd=REPO, timeout_s=timeout_s,
    )  # fmt: skip
