"""Which models each worker has, and pulling the missing ones onto Ollama workers (the seed's
`setup_models.py`): `llm-gateway models list|pull`, or at startup with GATEWAY_PULL_REQUIRED=true.

Control plane: httpx, with each worker's own key. Ollama: `/api/tags` (on disk), `/api/ps` (loaded),
`/api/pull` (NDJSON progress); OpenAI-compatible workers: `/v1/models`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
import structlog

from routing.catalog import Catalog, WorkerSpec

_log = structlog.get_logger("gateway.models")

Progress = Callable[[str, int | None, int | None], None]
"""(status, completed bytes, total bytes)."""


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


def _root(url: str) -> str:
    return url[:-3] if url.endswith("/v1") else url


def _headers(worker: WorkerSpec, env: Mapping[str, str]) -> dict[str, str]:
    key = env.get(worker.api_key_env) if worker.api_key_env else None
    return {"Authorization": f"Bearer {key}"} if key else {}


def _names(data: object) -> set[str]:
    models = data.get("models") if isinstance(data, dict) else None
    return {str(m.get("name") or m.get("model")) for m in models or () if isinstance(m, dict)}


async def inventory(catalog: Catalog, env: Mapping[str, str], client: httpx.AsyncClient) -> list[WorkerModels]:
    required = {m.name for m in catalog.models if m.required}
    result = []
    for worker in catalog.workers:
        entry = WorkerModels(worker.name, worker.kind,
                             wanted={s.name: s.worker_model_id for s in worker.served()},
                             required={s.name for s in worker.served() if s.name in required})
        headers = _headers(worker, env)
        try:
            if worker.kind == "ollama":
                entry.present = _names((await client.get(_root(worker.url) + "/api/tags", headers=headers)).json())
                entry.loaded = _names((await client.get(_root(worker.url) + "/api/ps", headers=headers)).json())
            else:
                data = (await client.get(worker.url + "/models", headers=headers)).json()
                entry.present = {str(m.get("id")) for m in data.get("data") or () if isinstance(m, dict)}
        except (httpx.HTTPError, ValueError, AttributeError):
            entry.reachable = False
        result.append(entry)
    return result


async def pull(worker: WorkerSpec, model: str, env: Mapping[str, str], client: httpx.AsyncClient,
               on_progress: Progress | None = None) -> None:
    """Pull `model` onto an Ollama worker, reporting progress; raise RuntimeError on failure."""
    if worker.kind != "ollama":
        raise RuntimeError(f"{worker.name} is a {worker.kind} worker: only Ollama workers pull models")
    url = _root(worker.url) + "/api/pull"
    async with client.stream("POST", url, json={"model": model, "stream": True}, headers=_headers(worker, env),
                             timeout=httpx.Timeout(30.0, read=600.0)) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{worker.name}: pull of {model} failed: HTTP {response.status_code} "
                               f"{(await response.aread())[:300]!r}")
        last = ""
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            if "error" in event:
                raise RuntimeError(f"{worker.name}: pull of {model} failed: {event['error']}")
            last = str(event.get("status", ""))
            if on_progress is not None:
                on_progress(last, event.get("completed"), event.get("total"))
        if last != "success":
            raise RuntimeError(f"{worker.name}: pull of {model} ended without success ({last or 'no status'})")
    _log.info("model_pulled", worker=worker.name, model=model)


async def pull_missing(catalog: Catalog, env: Mapping[str, str], *, only_required: bool = True,
                       model: str | None = None, worker_name: str | None = None,
                       on_progress: Callable[[str, str], Progress] | None = None) -> list[str]:
    """Pull onto each Ollama worker the models it lacks; return the problems (empty: all there)."""
    problems = []
    async with httpx.AsyncClient(timeout=10.0) as client:
        for entry in await inventory(catalog, env, client):
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
                    await pull(worker, upstream_id, env, client,
                               on_progress(worker.name, upstream_id) if on_progress else None)
                except (RuntimeError, httpx.HTTPError, ValueError) as exc:
                    problems.append(str(exc))
    return problems
