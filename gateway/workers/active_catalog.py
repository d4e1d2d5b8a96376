"""The catalog in force, and swapping it atomically (hot reload).

A request reads `CatalogHolder.current` once and keeps that `ActiveCatalog` to its end, so in-flight
requests finish on the catalog they started with. A reload builds the new one completely (an
invalid file raises `CatalogError` and the old one stays), carrying over the live state of workers
that did not change (in-flight counts, health, ejections), then swaps one reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from gateway.workers.overlay import WorkerOverlay, apply_overlay
from gateway.workers.pool import WorkerPool
from routing.catalog import Catalog, Timeouts, load_catalog
from routing.model_choice import ModelChooser

_log = structlog.get_logger("gateway.workers.active_catalog")


@dataclass(slots=True)
class ActiveCatalog:
    """A loaded catalog with what it needs at request time: its model chooser and its worker pool."""

    catalog: Catalog
    chooser: ModelChooser
    pool: WorkerPool
    loaded_at: float = field(default_factory=time.time)

    @classmethod
    def build(cls, catalog: Catalog, env: Mapping[str, str], previous: ActiveCatalog | None = None) -> ActiveCatalog:
        return cls(catalog=catalog, chooser=ModelChooser(catalog),
                   pool=WorkerPool(catalog, env, previous.pool if previous else None))

    def timeouts_for(self, model: str, worker_timeouts: Timeouts) -> Timeouts:
        spec = self.catalog.model(model)
        return spec.timeouts if spec is not None and spec.timeouts is not None else worker_timeouts


class CatalogHolder:
    def __init__(self, runtime: ActiveCatalog, env: Mapping[str, str], source: str | None = None) -> None:
        self.current = runtime
        self.base = runtime.catalog
        """The catalog as the file (or the caller) gave it, before runtime worker changes."""
        self.overlay = WorkerOverlay()
        self._env = env
        self.source = source
        self._listeners: list[Callable[[ActiveCatalog], None]] = []

    def on_swap(self, listener: Callable[[ActiveCatalog], None]) -> None:
        self._listeners.append(listener)

    def swap(self, catalog: Catalog) -> ActiveCatalog:
        """Install a new base catalog (the runtime worker changes stay applied on top)."""
        installed = self._install(apply_overlay(catalog, self.overlay))
        self.base = catalog
        return installed

    def set_overlay(self, overlay: WorkerOverlay) -> bool:
        """Apply runtime worker changes if they are new; raises CatalogError (and keeps the old) if invalid."""
        if overlay.version == self.overlay.version:
            return False
        catalog = apply_overlay(self.base, overlay)
        self.overlay = overlay
        self._install(catalog)
        return True

    def _install(self, catalog: Catalog) -> ActiveCatalog:
        runtime = ActiveCatalog.build(catalog, self._env, previous=self.current)
        self.current = runtime
        for listener in self._listeners:
            listener(runtime)
        return runtime

    def reload(self) -> ActiveCatalog:
        """Read the catalog file again and swap it in; raises `CatalogError` and keeps the old one."""
        if self.source is None:
            raise RuntimeError("this gateway was not started from a catalog file")
        runtime = self.swap(load_catalog(self.source))
        _log.info("catalog_reloaded", source=self.source, models=len(runtime.catalog.models),
                  workers=len(runtime.catalog.workers))
        return runtime
