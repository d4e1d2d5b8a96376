"""Pure routing logic: the catalog, the choice of model and the choice of worker, and the health
state behind it (outlier ejection, active health, retry budget). No I/O."""

from routing.active_health import ActiveHealth
from routing.catalog import Catalog, CatalogError, ModelSpec, WorkerSpec, load_catalog, parse_catalog
from routing.model_choice import ModelChoice, ModelChooser, UnknownModel
from routing.outlier import OutlierConfig, OutlierDetector
from routing.policies import (
    LeastOutstanding,
    PrefixAffinity,
    Residency,
    RoundRobin,
    SessionAffinity,
    WeightedRoundRobin,
    WorkerPolicy,
    make_policy,
)
from routing.retry_budget import RetryBudget, backoff_s
from routing.safe_regex import check_pattern, compile_safe
from routing.snapshot import RequestKey, WorkerLoad

__all__ = [
    "ActiveHealth",
    "Catalog",
    "CatalogError",
    "LeastOutstanding",
    "ModelChoice",
    "ModelChooser",
    "ModelSpec",
    "OutlierConfig",
    "OutlierDetector",
    "PrefixAffinity",
    "RequestKey",
    "Residency",
    "RetryBudget",
    "RoundRobin",
    "SessionAffinity",
    "UnknownModel",
    "WeightedRoundRobin",
    "WorkerLoad",
    "WorkerPolicy",
    "WorkerSpec",
    "backoff_s",
    "check_pattern",
    "compile_safe",
    "load_catalog",
    "make_policy",
    "parse_catalog",
]
