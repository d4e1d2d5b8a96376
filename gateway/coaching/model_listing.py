"""`GET /api/models` in the UpCoach shape: the catalog models that workers really have, with their size.

A model is listed when a worker of the current catalog serves it and that worker is not known to lack
it: Ollama workers say what they have on disk, with sizes in bytes (`list`, i.e. `GET /api/tags`, read
through the control-plane client with a short timeout and kept `ttl_s` seconds; a worker that does not
answer is given the benefit of the doubt).
A `local` worker's size is its GGUF file's. vLLM and other OpenAI-compatible workers publish no size:
`null`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from gateway.errors import GatewayError
from gateway.workers.active_catalog import ActiveCatalog
from gateway.workers.control_client import ControlClient
from gateway.workers.local_commands import LocalWorkerError, model_path
from gateway.workers.pool import Placement


def ollama_name(name: str) -> str:
    """`name` with Ollama's default tag: `mistral` → `mistral:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class ModelListing:
    def __init__(self, control: ControlClient, *, ttl_s: float = 30.0, timeout_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._control = control
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._tags: dict[str, tuple[float, dict[str, int | None] | None]] = {}
        self._files: dict[str, int | None] = {}

    async def listing(self, runtime: ActiveCatalog, may_use: Callable[[str], bool]) -> list[dict[str, Any]]:
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
        async def read(placement: Placement) -> None:
            spec = placement.state.spec
            tags: dict[str, int | None] | None
            try:
                present = await self._control.ollama_present(spec, self._timeout_s)
                tags = {ollama_name(name): size for name, size in present.items()}
            except GatewayError:
                tags = None
            self._tags[spec.url] = (now + self._ttl_s, tags)

        await asyncio.gather(*(read(p) for p in stale))
