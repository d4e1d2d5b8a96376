"""The model catalog (`config/models.yaml`): its schema and its validation.

The file is decoded into strict types that reject unknown fields, then checked as a whole
(regexes compile, routes and workers name known models, URLs are absolute http(s) URLs,
names are unique). Every problem is reported with the file, the path of the field and the reason.

It accepts the UpCoach catalog verbatim (`models`, `routing.default_model`, `routing.routes`) and
extends it with `workers`: the servers that run inference and the catalog models each one serves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
import yaml

WorkerKind = Literal["openai", "vllm", "ollama", "local"]


class CatalogError(ValueError):
    """The catalog cannot be used: `problems` lists each one as `path: reason`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid catalog {source}:\n{listing}")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class ModelSpec(_Strict, frozen=True):
    """A model clients may ask for by `name`."""

    name: str
    description: str = ""
    required: bool = False
    use_cases: tuple[str, ...] = ()


class RouteRule(_Strict, frozen=True):
    """When `pattern` (a case-insensitive regex) matches the prompt, use `model`."""

    pattern: str
    model: str
    name: str | None = None


class RoutingSpec(_Strict, frozen=True):
    default_model: str | None = None
    routes: tuple[RouteRule, ...] = ()


class Timeouts(_Strict, frozen=True):
    """Seconds. `first_byte`: until the worker's response headers; `idle`: between stream chunks;
    `total`: the whole request, retries included."""

    connect: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    first_byte: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    idle: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    total: Annotated[float, msgspec.Meta(gt=0)] = 600.0


class ServedModel(_Strict, frozen=True):
    """A catalog model a worker serves, and the worker's own id for it."""

    name: str
    upstream_id: str | None = None

    @property
    def worker_model_id(self) -> str:
        return self.upstream_id or self.name


class LocalProcess(_Strict, frozen=True):
    """How `llm-gateway serve` starts a `local` worker (llama.cpp) as a child process."""

    model_file: str | None = None
    model_package: str | None = None
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8081
    context_size: Annotated[int, msgspec.Meta(ge=128)] = 2048
    threads: Annotated[int, msgspec.Meta(ge=1)] | None = None
    startup_timeout: Annotated[float, msgspec.Meta(gt=0)] = 120.0


class WorkerSpec(_Strict, frozen=True):
    name: str
    kind: WorkerKind
    models: tuple[str | ServedModel, ...]
    base_url: str | None = None
    weight: Annotated[int, msgspec.Meta(ge=0)] = 1
    api_key_env: str | None = None
    timeouts: Timeouts = Timeouts()
    local: LocalProcess | None = None
    send_request_id: bool | None = None
    """Forward `X-Request-Id`. Default: yes, except to `local` workers (llama-cpp-python's server
    answers 400 to a request id that is not a UUID)."""

    @property
    def forwards_request_id(self) -> bool:
        return self.send_request_id if self.send_request_id is not None else self.kind != "local"

    def served(self) -> tuple[ServedModel, ...]:
        return tuple(m if isinstance(m, ServedModel) else ServedModel(name=m) for m in self.models)

    @property
    def url(self) -> str:
        """The worker's API root (for OpenAI-compatible kinds, the URL that ends in `/v1`)."""
        if self.base_url:
            return self.base_url.rstrip("/")
        port = self.local.port if self.local else LocalProcess().port
        return f"http://127.0.0.1:{port}/v1"


class Catalog(_Strict, frozen=True):
    models: tuple[ModelSpec, ...] = ()
    routing: RoutingSpec = RoutingSpec()
    workers: tuple[WorkerSpec, ...] = ()

    def model(self, name: str) -> ModelSpec | None:
        return next((m for m in self.models if m.name == name), None)


def load_catalog(path: str | Path) -> Catalog:
    """Read, decode and validate a catalog file; raise `CatalogError` with every problem found."""
    source = str(path)
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(source, [f"$: cannot read the file ({exc.strerror})"]) from None
    return parse_catalog(raw, source)


def parse_catalog(text: str, source: str = "<string>") -> Catalog:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(source, [f"$: not valid YAML ({exc})"]) from None
    if data is None:
        data = {}
    try:
        catalog = msgspec.convert(data, Catalog)
    except msgspec.ValidationError as exc:
        raise CatalogError(source, [_describe_validation_error(str(exc))]) from None
    problems = list(_check(catalog))
    if problems:
        raise CatalogError(source, problems)
    return catalog


def _describe_validation_error(message: str) -> str:
    # msgspec says "<reason> - at `$.workers[0].kind`": put the path first, as the other problems do.
    reason, sep, where = message.rpartition(" - at ")
    return f"{where.strip('`')}: {reason}" if sep else f"$: {message}"


def _duplicates(names: list[str]) -> set[str]:
    seen: set[str] = set()
    return {n for n in names if n in seen or seen.add(n)}  # type: ignore[func-returns-value]


def _check(catalog: Catalog) -> list[str]:
    problems: list[str] = []
    known = {m.name for m in catalog.models}
    for name in sorted(_duplicates([m.name for m in catalog.models])):
        problems.append(f"$.models: the model name {name!r} appears more than once")
    default = catalog.routing.default_model
    if default is not None and default not in known:
        problems.append(f"$.routing.default_model: unknown model {default!r} (not in $.models)")
    for i, rule in enumerate(catalog.routing.routes):
        where = f"$.routing.routes[{i}]"
        try:
            re.compile(rule.pattern, re.IGNORECASE)
        except re.error as exc:
            problems.append(f"{where}.pattern: not a valid regular expression ({exc})")
        if rule.model not in known:
            problems.append(f"{where}.model: unknown model {rule.model!r} (not in $.models)")
    for name in sorted(_duplicates([w.name for w in catalog.workers])):
        problems.append(f"$.workers: the worker name {name!r} appears more than once")
    for i, worker in enumerate(catalog.workers):
        problems.extend(_check_worker(f"$.workers[{i}]", worker, known))
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
    if worker.base_url is not None:
        parts = urlsplit(worker.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"{where}.base_url: {worker.base_url!r} is not an absolute http(s) URL")
        elif parts.query or parts.fragment:
            problems.append(f"{where}.base_url: must not carry a query or fragment")
    if not worker.models:
        problems.append(f"{where}.models: a worker must serve at least one model")
    for j, served in enumerate(worker.served()):
        if served.name not in known:
            problems.append(f"{where}.models[{j}]: unknown model {served.name!r} (not in $.models)")
    return problems
