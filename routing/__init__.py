"""Pure routing logic: the catalog, the choice of model and the choice of worker. No I/O."""

from routing.catalog import Catalog, CatalogError, ModelSpec, WorkerSpec, load_catalog, parse_catalog
from routing.model_choice import ModelChoice, ModelChooser, UnknownModel
from routing.worker_choice import WeightedRoundRobin

__all__ = [
    "Catalog",
    "CatalogError",
    "ModelChoice",
    "ModelChooser",
    "ModelSpec",
    "UnknownModel",
    "WeightedRoundRobin",
    "WorkerSpec",
    "load_catalog",
    "parse_catalog",
]
