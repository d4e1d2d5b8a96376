"""Which models each worker has, and pulling the missing ones onto Ollama workers (the seed's
`setup_models.py`): `llm-gateway models list|pull`, or at startup with GATEWAY_PULL_REQUIRED=true.

The calls go through `gateway.workers.control_client`: Ollama's `list` (on disk), `ps` (loaded) and
`pull` (with progress); OpenAI-compatible workers' `/v1/models`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from gateway.errors import GatewayError
from gateway.workers.control_client import ControlClient, PullProgress
from routing.catalog import Catalog, WorkerSpec

_log = structlog.get_logger("gateway.models")


class PullFailed(RuntimeError):
    """A model could not be pulled; the message names the worker, the model and why."""


@dataclass
class WorkerModels:
    worker: str
    kind: str
    reachable: bool = True
    present: set[str] = field(default_factory=set)
    loaded: set[str] | None = None
    """None: the worker cannot say (OpenAI-compatible kinds)."""
    wanted: dict[str, str] = field(default_factory=dict)
    """Catalog model → the worker's id for it, for every model the catalog puts on this worker."""
    required: set[str] = field(default_factory=set)

    def has(self, upstream_id: str) -> bool:
        return upstream_id in self.present or f"{upstream_id}:latest" in self.present \
            or upstream_id.removesuffix(":latest") in self.present

    def missing(self) -> list[str]:
        return sorted(uid for uid in self.wanted.values() if not self.has(uid))


async def inventory(catalog: Catalog, control: ControlClient) -> list[WorkerModels]:
    required = {m.name for m in catalog.models if m.required}
    result = []
    for worker in catalog.workers:
        entry = WorkerModels(worker.name, worker.kind,
                             wanted={s.name: s.worker_model_id for s in worker.served()},
                             required={s.name for s in worker.served() if s.name in required})
        try:
            if worker.kind == "ollama":
                entry.present = set(await control.ollama_present(worker))
                entry.loaded = set(await control.ollama_loaded(worker))
            else:
                entry.present = await control.served_models(worker)
        except GatewayError:
            entry.reachable = False
        result.append(entry)
    return result


async def pull(control: ControlClient, worker: WorkerSpec, model: str, on_progress: PullProgress | None = None
               ) -> None:
    """Pull `model` onto an Ollama worker, reporting progress; raise PullFailed on failure."""
    if worker.kind != "ollama":
        raise PullFailed(f"{worker.name} is a {worker.kind} worker: only Ollama workers pull models")
    try:
        await control.pull(worker, model, on_progress)
    except GatewayError as exc:
        raise PullFailed(f"{worker.name}: pull of {model} failed: {exc.message}") from None
    _log.info("model_pulled", worker=worker.name, model=model)


async def pull_missing(catalog: Catalog, control: ControlClient, *, only_required: bool = True,
                       model: str | None = None, worker_name: str | None = None,
                       on_progress: Callable[[str, str], PullProgress] | None = None) -> list[str]:
    """Pull onto each Ollama worker the models it lacks; return the problems (empty: all there)."""
    problems = []
    for entry in await inventory(catalog, control):
        worker = next(w for w in catalog.workers if w.name == entry.worker)
        if worker.kind != "ollama" or (worker_name and worker.name != worker_name):
            continue
        if not entry.reachable:
            problems.append(f"{worker.name}: unreachable")
            continue
        for name, upstream_id in sorted(entry.wanted.items()):
            if model is not None and model not in (name, upstream_id):
                continue
            if model is None and only_required and name not in entry.required:
                continue
            if entry.has(upstream_id):
                continue
            _log.info("model_pull_started", worker=worker.name, model=upstream_id)
            try:
                await pull(control, worker, upstream_id, on_progress(worker.name, upstream_id) if on_progress else None)
            except PullFailed as exc:
                problems.append(str(exc))
    return problems
