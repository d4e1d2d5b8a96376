"""`GET /api/models` in the UpCoach shape: the catalog models that workers really have, with their size.

A model is listed when a worker of the current catalog serves it and that worker is not known to lack
it: Ollama workers say what they have on disk, with sizes in bytes (`GET /api/tags`, read with a short
timeout and kept `ttl_s` seconds; a worker that does not answer is given the benefit of the doubt).
A `local` worker's size is its GGUF file's. vLLM and other OpenAI-compatible workers publish no size:
`null`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from gateway.workers.active_catalog import Runtime
from gateway.workers.local_processes import LocalWorkerError, model_path
from gateway.workers.pool import Placement


def _root(url: str) -> str:
    return url[:-3] if url.endswith("/v1") else url


def ollama_name(name: str) -> str:
    """`name` with Ollama's default tag: `mistral` → `mistral:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def parse_tags(data: Any) -> dict[str, int | None]:
    """Ollama's `/api/tags`: each model (by its tagged name) and its size in bytes."""
    found: dict[str, int | None] = {}
    if isinstance(data, dict):
        for model in data.get("models") or ():
            if not isinstance(model, dict):
                continue
            size = model.get("size")
            for key in ("name", "model"):
                if isinstance(model.get(key), str):
                    found[ollama_name(model[key])] = size if isinstance(size, int) else None
    return found


class ModelListing:
    def __init__(self, *, ttl_s: float = 30.0, timeout_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._tags: dict[str, tuple[float, dict[str, int | None] | None]] = {}
        self._files: dict[str, int | None] = {}

    async def listing(self, runtime: Runtime, may_use: Callable[[str], bool]) -> list[dict[str, Any]]:
        pool = runtime.pool
        placements = {m.name: pool.placements(m.name) for m in runtime.catalog.models if may_use(m.name)}
        ollama = {p.state.spec.url: p for ps in placements.values() for p in ps if p.state.spec.kind == "ollama"}
        await self._refresh_tags(list(ollama.values()))
        models = []
        for name, served in placements.items():
            present = False
            size: int | None = None
            for placement in served:
                has, bytes_ = self._size(placement)
                present = present or has
                size = size if size is not None else bytes_
            if present:
                models.append({"id": name, "name": name, "size": size})
        return models

    def _size(self, placement: Placement) -> tuple[bool, int | None]:
        """Whether the worker may have the model, and its size if known."""
        spec = placement.state.spec
        if spec.kind == "ollama":
            tags = self._tags.get(spec.url, (0.0, None))[1]
            if tags is None:
                return True, None
            name = ollama_name(placement.upstream_model)
            return name in tags, tags.get(name)
        if spec.kind == "local" and spec.local is not None:
            if spec.name not in self._files:
                try:
                    self._files[spec.name] = model_path(spec).stat().st_size
                except (LocalWorkerError, OSError):
                    self._files[spec.name] = None
            return True, self._files[spec.name]
        return True, None

    async def _refresh_tags(self, workers: list[Placement]) -> None:
        now = self._clock()
        stale = [p for p in workers if self._tags.get(p.state.spec.url, (0.0, None))[0] <= now]
        if not stale:
            return
        async with httpx.AsyncClient(timeout=self._timeout_s) as client:
            async def read(placement: Placement) -> None:
                spec = placement.state.spec
                headers = {"Authorization": placement.target.auth_header} if placement.target.auth_header else {}
                tags: dict[str, int | None] | None
                try:
                    response = await client.get(_root(spec.url) + "/api/tags", headers=headers)
                    tags = parse_tags(response.json()) if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError):
                    tags = None
                self._tags[spec.url] = (now + self._ttl_s, tags)

            await asyncio.gather(*(read(p) for p in stale))
