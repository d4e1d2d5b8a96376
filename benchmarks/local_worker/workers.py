"""The two embedded workers compared, as `make run` starts each: the shipped catalog's chat worker
(config/models.yaml) served by llama.cpp's `llama-server` (the command line the gateway builds,
`gateway.workers.local_commands.command_for`, the binary found as the gateway finds it), and by
llama-cpp-python's server as the gateway started it before (its command line at commit 6ca2df6:
one sequence at a time, a new request waiting for the running one rather than interrupting it).

Each is reached through the gateway with a one-worker catalog: the new one as kind `llamacpp`, the old
one as kind `openai` (its own protocol module is gone; the suite's requests need none of its fixes) with
`send_request_id: false`, as the old catalog's default was for it: llama-cpp-python's server answers 400
to an `X-Request-Id` that is not a UUID, and the gateway's ids are not."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec

from benchmarks.harness import machine, procs
from benchmarks.harness.files import REPO
from benchmarks.local_worker.workload import MODEL
from gateway.settings import load_settings
from gateway.workers.local_commands import command_for, llama_server_binary, model_path
from routing.catalog import WorkerSpec, load_catalog
from testkit.loopback import LOOPBACK

SHIPPED_CATALOG = REPO / "config" / "models.yaml"
WORKER_KEYS = ("old", "new")
"""Measured in this order, one at a time (never both running: on 2 cores they would share them)."""


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one worker and how the gateway reaches it."""

    key: str
    name: str
    kind: str
    """The catalog kind the gateway's catalog gives it."""
    send_request_id: bool
    argv: list[str]
    ready_path: str
    """Answers 200 once the model is loaded."""
    version: str
    worker: WorkerSpec
    """The catalog's chat worker, on the port of this run."""

    @property
    def port(self) -> int:
        assert self.worker.local is not None
        return self.worker.local.port

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    @property
    def model_id(self) -> str:
        """The worker's id of the model (its alias)."""
        return self.worker.served()[0].worker_model_id

    @property
    def startup_timeout_s(self) -> float:
        assert self.worker.local is not None
        return self.worker.local.startup_timeout

    @property
    def model_file(self) -> str:
        return model_path(self.worker).name


def chat_worker(catalog: Path = SHIPPED_CATALOG) -> WorkerSpec:
    """The catalog's first `local` worker that generates text (not the embeddings one)."""
    for worker in load_catalog(catalog).workers:
        if worker.local is not None and not worker.local.embeddings:
            return worker
    raise RuntimeError(f"{catalog}: no local chat worker")


def placed(worker: WorkerSpec, port: int, threads: int | None = None) -> WorkerSpec:
    """`worker` listening on `port` instead of its catalog port (which `make run` may hold), with
    `threads` compute threads when given (else the catalog's, by default the cores)."""
    assert worker.local is not None
    local = msgspec.structs.replace(worker.local, port=port, threads=threads or worker.local.threads)
    return msgspec.structs.replace(worker, local=local)


def old_argv(worker: WorkerSpec) -> list[str]:
    """llama-cpp-python's server as the gateway started it up to commit 6ca2df6."""
    assert worker.local is not None
    local = worker.local
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path(worker)),
            "--model_alias", worker.served()[0].worker_model_id, "--host", LOOPBACK, "--port", str(local.port),
            "--n_ctx", str(local.context_size), "--n_threads", str(local.threads or os.cpu_count() or 1),
            "--interrupt_requests", "False"]  # fmt: skip


def launch(key: str, worker: WorkerSpec) -> Launch:
    """The launch of worker `key` (`old` or `new`) serving `worker` (`placed` on this run's port; blocking:
    asks the binary its version). Raises LocalWorkerError when the new worker's binary cannot be found."""
    if key == "old":
        return Launch(
            key,
            "llama-cpp-python server (old)",
            kind="openai",
            send_request_id=False,
            argv=old_argv(worker),
            ready_path="/v1/models",
            version=f"llama-cpp-python {machine.package_version('llama-cpp-python')}",
            worker=worker,
        )
    binary = llama_server_binary(load_settings().llama_server)
    return Launch(key, "llama-server (new)", kind="llamacpp", send_request_id=True,
                  argv=command_for(worker, binary), ready_path="/health",
                  version=f"llama-server {machine.command_version([str(binary), '--version'])} ({binary})",
                  worker=worker)  # fmt: skip


def gateway_catalog(launch: Launch) -> str:
    """A catalog with one required model served by the launched worker alone."""
    served = f"{{name: {MODEL}, upstream_id: {launch.model_id}}}"
    return (f"models: [{{name: {MODEL}, required: true}}]\nrouting: {{default_model: {MODEL}}}\n"
            f"workers:\n  - name: {launch.key}-worker\n    kind: {launch.kind}\n"
            f"    send_request_id: {str(launch.send_request_id).lower()}\n"
            f"    base_url: {launch.base_url}\n    models: [{served}]\n")  # fmt: skip


async def start(launch: Launch, workdir: Path) -> procs.Child:
    """Start the worker; ready once its `ready_path` answers 200 (the model loaded)."""
    return await procs.start_ready(
        f"{launch.key} worker", launch.argv, workdir / f"worker-{launch.key}.log",
        f"http://{LOOPBACK}:{launch.port}{launch.ready_path}", timeout_s=launch.startup_timeout_s,
    )  # fmt: skip
