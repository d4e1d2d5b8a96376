"""Where the mobile API's two files are, loading them together, and reloading them with the catalog.

`GATEWAY_COACHING_CONFIG` (default `config/coaching.yaml`) and `GATEWAY_EDGE_MODELS_CONFIG` (default
`config/edge_models.yaml`). A file named by its variable must exist and be valid, and what the coaching
catalog names must exist (models in the model catalog, edge models in the edge catalog), or the
gateway does not start. The default files are the samples for the default catalog: absent, that part
is empty (no context types; no edge models); naming a model the catalog in use lacks, a warning (a
chat of that context type then answers 404 `model_not_found`). A deployment that serves the mobile
app names its files.

Both are read again whenever the model catalog is reloaded (SIGHUP, `POST /admin/reload`, a change
to the catalog file): requests in flight keep the version they started with; an invalid file is
logged and the previous version stays, as with the catalog itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway.coaching.catalog import CoachingCatalog, load_coaching, reference_problems
from gateway.coaching.edge_models import EMPTY_EDGE_MODELS, EdgeModels, load_edge_models
from gateway.workers.active_catalog import ActiveCatalog, CatalogHolder
from routing.catalog import Catalog, CatalogError

COACHING_CONFIG_ENV = "GATEWAY_COACHING_CONFIG"
DEFAULT_COACHING_CONFIG = "config/coaching.yaml"
EDGE_MODELS_ENV = "GATEWAY_EDGE_MODELS_CONFIG"
DEFAULT_EDGE_MODELS = "config/edge_models.yaml"

_log = structlog.get_logger("gateway.coaching")


@dataclass(frozen=True, slots=True)
class MobileFiles:
    coaching_path: str = DEFAULT_COACHING_CONFIG
    coaching_required: bool = False
    """True when named explicitly: then a missing file is an error, not an empty catalog."""
    edge_models_path: str = DEFAULT_EDGE_MODELS
    edge_models_required: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MobileFiles:
        coaching = env.get(COACHING_CONFIG_ENV, "").strip()
        edge = env.get(EDGE_MODELS_ENV, "").strip()
        return cls(coaching_path=coaching or DEFAULT_COACHING_CONFIG, coaching_required=bool(coaching),
                   edge_models_path=edge or DEFAULT_EDGE_MODELS, edge_models_required=bool(edge))


@dataclass(frozen=True, slots=True)
class MobileConfig:
    coaching: CoachingCatalog
    edge: EdgeModels


def load_mobile_config(files: MobileFiles, models: Catalog) -> MobileConfig:
    """Both files, checked against each other and the model catalog; raises `CatalogError`."""
    edge = EMPTY_EDGE_MODELS
    if files.edge_models_required or Path(files.edge_models_path).exists():
        edge = load_edge_models(files.edge_models_path)
    else:
        _log.warning("edge_models_absent", path=files.edge_models_path,
                     consequence="GET /api/edge-models lists no models")
    coaching = CoachingCatalog()
    if files.coaching_required:
        coaching = load_coaching(files.coaching_path, models=models, edge=edge.catalog)
    elif Path(files.coaching_path).exists():
        coaching = load_coaching(files.coaching_path)
        problems = reference_problems(coaching, models, edge.catalog)
        if problems:
            _log.warning("coaching_config_mismatch", path=files.coaching_path, problems=problems,
                         hint=f"set {COACHING_CONFIG_ENV} to a coaching catalog for this model catalog")
    else:
        _log.warning("coaching_config_absent", path=files.coaching_path,
                     consequence="/api/coaching/chat knows no context types")
    return MobileConfig(coaching=coaching, edge=edge)


class MobileConfigHolder:
    """The mobile configuration in force; swapped when the catalog is reloaded."""

    def __init__(self, files: MobileFiles, runtimes: CatalogHolder) -> None:
        self.files = files
        self.current = load_mobile_config(files, runtimes.current.catalog)
        runtimes.on_swap(self._reload)

    def _reload(self, runtime: ActiveCatalog) -> None:
        try:
            self.current = load_mobile_config(self.files, runtime.catalog)
        except CatalogError as exc:
            _log.error("mobile_config_reload_failed", source=exc.source, problems=exc.problems)
