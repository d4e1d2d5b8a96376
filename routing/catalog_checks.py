"""The checks a decoded catalog must pass as a whole: names unique, references known, regexes
valid and safe, URLs absolute. Each problem is reported as `path: reason`."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from routing.safe_regex import check_pattern

if TYPE_CHECKING:
    from routing.catalog import Catalog, ModelSpec, WorkerSpec


def _duplicates(names: list[str]) -> set[str]:
    seen: set[str] = set()
    return {n for n in names if n in seen or seen.add(n)}  # type: ignore[func-returns-value]


def check_catalog(catalog: Catalog) -> list[str]:
    """Every problem of a decoded catalog, as `path: reason`."""
    problems: list[str] = []
    known = {m.name for m in catalog.models}
    for name in sorted(_duplicates([m.name for m in catalog.models])):
        problems.append(f"$.models: the model name {name!r} appears more than once")
    for name in sorted(_duplicates([a for m in catalog.models for a in m.aliases])):
        problems.append(f"$.models: the alias {name!r} is given to more than one model")
    limited = {served.name for w in catalog.workers if w.max_concurrent is not None for served in w.served()}
    for i, model in enumerate(catalog.models):
        problems.extend(_check_model(f"$.models[{i}]", model, known))
        if model.queue is not None and model.name not in limited:
            problems.append(f"$.models[{i}].queue: no worker of {model.name!r} has `max_concurrent`, so no "
                            "request would ever wait")
    default = catalog.routing.default_model
    if default is not None and default not in known:
        problems.append(f"$.routing.default_model: unknown model {default!r} (not in $.models)")
    for i, rule in enumerate(catalog.routing.routes):
        where = f"$.routing.routes[{i}]"
        refused = check_pattern(rule.pattern)
        if refused:
            problems.append(f"{where}.pattern: not a usable regular expression ({refused})")
        if rule.model not in known:
            problems.append(f"{where}.model: unknown model {rule.model!r} (not in $.models)")
    for name in sorted(_duplicates([w.name for w in catalog.workers])):
        problems.append(f"$.workers: the worker name {name!r} appears more than once")
    for i, worker in enumerate(catalog.workers):
        problems.extend(_check_worker(f"$.workers[{i}]", worker, known))
    return problems


def _check_model(where: str, model: ModelSpec, known: set[str]) -> list[str]:
    problems: list[str] = []
    for j, alias in enumerate(model.aliases):
        if alias in known:
            problems.append(f"{where}.aliases[{j}]: {alias!r} is already the name of a model")
    for j, fallback in enumerate(model.fallbacks):
        if fallback not in known:
            problems.append(f"{where}.fallbacks[{j}]: unknown model {fallback!r} (not in $.models)")
        elif fallback == model.name:
            problems.append(f"{where}.fallbacks[{j}]: a model cannot fall back to itself")
    return problems


def _check_worker(where: str, worker: WorkerSpec, known: set[str]) -> list[str]:
    problems: list[str] = []
    if worker.kind == "local":
        if worker.local is None:
            problems.append(f"{where}.local: a local worker needs `local` (model_file or model_package)")
        elif not (worker.local.model_file or worker.local.model_package):
            problems.append(f"{where}.local: give model_file or model_package")
    elif worker.local is not None:
        problems.append(f"{where}.local: only workers of kind `local` are started by the gateway")
    if worker.base_url is None and worker.kind != "local":
        problems.append(f"{where}.base_url: required for a worker of kind {worker.kind!r}")
    if worker.discovery == "dns" and worker.kind == "local":
        problems.append(f"{where}.discovery: local workers are not discovered by DNS")
    if worker.base_url is not None:
        try:
            parts = urlsplit(worker.base_url)
            host = parts.hostname
        except ValueError:  # e.g. an unclosed `[` of an IPv6 address
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            problems.append(f"{where}.base_url: {worker.base_url!r} is not an absolute http(s) URL")
        elif parts.query or parts.fragment:
            problems.append(f"{where}.base_url: must not carry a query or fragment")
    if worker.kv_events is not None and not worker.kv_events.endpoint.startswith(("tcp://", "ipc://")):
        problems.append(f"{where}.kv_events.endpoint: {worker.kv_events.endpoint!r} is not a tcp:// or ipc:// "
                        "ZMQ endpoint")
    if not worker.models:
        problems.append(f"{where}.models: a worker must serve at least one model")
    for j, served in enumerate(worker.served()):
        if served.name not in known:
            problems.append(f"{where}.models[{j}]: unknown model {served.name!r} (not in $.models)")
    return problems
