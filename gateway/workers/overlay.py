"""Workers changed at runtime through the admin API, on top of the catalog file: workers added, drained
(no new requests; in-flight ones finish) or removed, and LoRA adapters loaded on vLLM workers (each
then routable as a model of its own name). Kept in Redis so every replica applies the same changes
(in memory when embedded); each replica re-reads them on its health interval and at every change it
makes, and a hot reload of the file keeps them.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, RedisClient, translate_redis_errors
from routing.catalog import Catalog, CatalogError, ModelSpec, ServedModel, WorkerSpec
from routing.catalog_checks import check_catalog

_OVERLAY_TTL_S = 30 * 24 * 3600  # refreshed by every change; a fleet untouched for a month keeps its file


class WorkerOverlay(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 0
    added: tuple[WorkerSpec, ...] = ()
    drained: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    adapters: dict[str, tuple[str, ...]] = {}
    """Worker name → LoRA adapter names loaded on it."""


def apply_overlay(catalog: Catalog, overlay: WorkerOverlay) -> Catalog:
    """The catalog with the runtime changes applied; raises CatalogError if the result is invalid."""
    if overlay.version == 0:
        return catalog
    workers = [w for w in catalog.workers if w.name not in overlay.removed and w.name not in
               {a.name for a in overlay.added}] + [w for w in overlay.added if w.name not in overlay.removed]
    models = list(catalog.models)
    known = {m.name for m in models}
    result = []
    for worker in workers:
        adapters = overlay.adapters.get(worker.name, ())
        for adapter in adapters:
            if adapter not in known:
                models.append(ModelSpec(name=adapter, description=f"LoRA adapter on {worker.name}"))
                known.add(adapter)
        served = worker.models + tuple(ServedModel(name=a, upstream_id=a) for a in adapters)
        result.append(msgspec.structs.replace(worker, models=served,
                                              weight=0 if worker.name in overlay.drained else worker.weight))
    updated = msgspec.structs.replace(catalog, workers=tuple(result), models=tuple(models))
    problems = check_catalog(updated)
    if problems:
        raise CatalogError("runtime worker changes", problems)
    return updated


class OverlayStore(Protocol):
    async def get(self) -> WorkerOverlay: ...

    async def put(self, overlay: WorkerOverlay) -> None: ...

    async def close(self) -> None: ...


class MemoryOverlayStore:
    def __init__(self) -> None:
        self._overlay = WorkerOverlay()

    async def get(self) -> WorkerOverlay:
        return self._overlay

    async def put(self, overlay: WorkerOverlay) -> None:
        self._overlay = overlay

    async def close(self) -> None:
        return None


class RedisOverlayStore:
    def __init__(self, client: RedisClient, prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self._redis = client
        self._key = prefix + "workers:overlay"
        self._decode = msgspec.json.Decoder(WorkerOverlay).decode

    async def get(self) -> WorkerOverlay:
        with translate_redis_errors("worker overlay get"):
            raw = await self._redis.get(self._key)
        return self._decode(raw) if raw else WorkerOverlay()

    async def put(self, overlay: WorkerOverlay) -> None:
        with translate_redis_errors("worker overlay put"):
            await self._redis.set(self._key, msgspec.json.encode(overlay), ex=_OVERLAY_TTL_S)

    async def close(self) -> None:
        await self._redis.aclose()
