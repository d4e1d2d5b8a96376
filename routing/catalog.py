"""The model catalog (`config/models.yaml`): its schema and its validation.

The file is decoded into strict types that reject unknown fields, then checked as a whole
(regexes compile, routes and workers name known models, URLs are absolute http(s) URLs,
names are unique). Every problem is reported with the file, the path of the field and the reason.

It accepts the UpCoach catalog verbatim (`models`, `routing.default_model`, `routing.routes`) and
extends it with `workers`: the servers that run inference and the catalog models each one serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import yaml

from routing.catalog_checks import check_catalog

WorkerKind = Literal["openai", "vllm", "ollama", "llamacpp", "local"]
PolicyName = Literal["least_outstanding", "round_robin", "weighted", "session_affinity", "prefix_affinity",
                     "prefix_affinity_precise", "residency"]
MatchOn = Literal["last_user_message", "conversation"]


class CatalogError(ValueError):
    """The catalog cannot be used: `problems` lists each one as `path: reason`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid catalog {source}:\n{listing}")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Timeouts(_Strict, frozen=True):
    """Seconds. `first_byte`: until the worker's response headers; `idle`: between stream chunks;
    `total`: the whole request, retries included."""

    connect: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    first_byte: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    idle: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    total: Annotated[float, msgspec.Meta(gt=0)] = 600.0


class CacheSpec(_Strict, frozen=True):
    """Response caching for a model or a routing rule (the rule's wins)."""

    enabled: bool | None = None
    """True: cache every request (e.g. daily tips); False: never; None (default): deterministic requests
    only (temperature 0, or a `seed`)."""
    ttl: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """Seconds; default CACHE_TTL."""
    scope: Literal["tenant", "shared"] = "tenant"
    """`tenant`: each key's team (or key) has its own entries; `shared`: one entry for everyone."""
    store_truncated: bool = False
    """Also store answers cut by `max_tokens` (`finish_reason: "length"`)."""


class QueueSpec(_Strict, frozen=True):
    """Requests waiting for a worker slot when every worker of the model (and of its fallbacks) is at its
    `max_concurrent`: first come, first served; past `max_waiting`, or after `max_wait`, 503 with
    `Retry-After` (codes `queue_full`, `queue_timeout`)."""

    max_waiting: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Requests allowed to wait (0: none, refuse at once). Default: the model's capacity, the sum of its
    workers' `max_concurrent` (so a request waits about one answer's time at most)."""
    max_wait: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Seconds a request may wait for a slot (not counted in `timeouts.total`, which starts with the slot)."""
    retry_after: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """Seconds the 503 tells clients to wait (`Retry-After`, rounded up to whole seconds)."""


class ModelSpec(_Strict, frozen=True):
    """A model clients may ask for by `name` (or one of its `aliases`)."""

    name: str
    description: str = ""
    required: bool = False
    use_cases: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    """Models tried in order when no worker of this one can take the request."""
    policy: PolicyName = "least_outstanding"
    """How a worker of this model is chosen."""
    policy_options: dict[str, float | int | str | bool] = msgspec.field(default_factory=dict)
    timeouts: Timeouts | None = None
    """Overrides the timeouts of the workers serving this model."""
    cache: CacheSpec | None = None
    capture: bool = False
    """Capture this model's requests and answers for fine-tuning (GATEWAY_CAPTURE_DIR); off by default."""
    queue: QueueSpec | None = None
    """The queue of requests waiting while every worker of this model is at its `max_concurrent`
    (defaults apply when unset)."""


class RouteRule(_Strict, frozen=True):
    """When `pattern` (a case-insensitive regex) matches the prompt, use `model`."""

    pattern: str
    model: str
    name: str | None = None
    cache: CacheSpec | None = None
    capture: bool | None = None
    """Capture the requests this rule routes (true) or not (false); unset: the model's `capture` decides."""


class RoutingSpec(_Strict, frozen=True):
    default_model: str | None = None
    routes: tuple[RouteRule, ...] = ()
    match_on: MatchOn = "last_user_message"
    """What rule patterns are matched against: the last user message, or the whole conversation."""


class HealthSpec(_Strict, frozen=True):
    """Active health checks and load scrapes, in the background (never on the request path)."""

    interval: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    unhealthy_threshold: Annotated[int, msgspec.Meta(ge=1)] = 2
    healthy_threshold: Annotated[int, msgspec.Meta(ge=1)] = 1
    scrape_load: bool = True
    """Read vLLM `/metrics` (queue, KV usage) and Ollama `/api/ps` (resident models)."""


class OutlierSpec(_Strict, frozen=True):
    """Passive outlier ejection (Envoy's semantics)."""

    consecutive_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    base_ejection: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    max_ejection: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    max_ejection_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50
    panic_threshold_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 50


class RetrySpec(_Strict, frozen=True):
    """Retries, only before the first byte reaches the client, each on another worker."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    budget_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
    budget_minimum: Annotated[int, msgspec.Meta(ge=0)] = 3
    backoff_base: Annotated[float, msgspec.Meta(ge=0)] = 0.025
    backoff_cap: Annotated[float, msgspec.Meta(ge=0)] = 0.25


class ServedModel(_Strict, frozen=True):
    """A catalog model a worker serves, and the worker's own id for it."""

    name: str
    upstream_id: str | None = None
    num_ctx: Annotated[int, msgspec.Meta(ge=128)] | None = None
    """Ollama workers: the context length every request asks for (`options.num_ctx`). Without it Ollama
    uses its default (4096 or the Modelfile's) and silently cuts longer prompts."""

    @property
    def worker_model_id(self) -> str:
        return self.upstream_id or self.name


class LocalProcess(_Strict, frozen=True):
    """How `llm-gateway serve` starts a `local` worker (llama.cpp's `llama-server`) as a child process."""

    model_file: str | None = None
    model_package: str | None = None
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8081
    context_size: Annotated[int, msgspec.Meta(ge=128)] = 2048
    """Tokens of context each request gets (prompt and answer together)."""
    parallel: Annotated[int, msgspec.Meta(ge=1, le=256)] = 4
    """Requests generated at once (llama-server's slots, batched continuously); more wait their turn."""
    embeddings: bool = False
    """Serve `/v1/embeddings` (mean pooling) instead of generating text."""
    args: tuple[str, ...] = ()
    """More llama-server arguments, appended as they are (e.g. `--reranking`, `--mmproj FILE`)."""
    chat_template: str | None = None
    """The chat template: a Jinja file, or the name of one shipped with the gateway (`chatml-tools`: ChatML
    with function tools); None: the one inside the model file."""
    threads: Annotated[int, msgspec.Meta(ge=1)] | None = None
    startup_timeout: Annotated[float, msgspec.Meta(gt=0)] = 120.0


class KvEventsSpec(_Strict, frozen=True, kw_only=True):
    """Where a worker publishes its KV-cache events (vLLM's `--kv-events-config`, the simulator's
    `--kv-events-endpoint`), and how the gateway tokenizes prompts like it, for `prefix_affinity_precise`."""

    endpoint: str
    """The worker's ZMQ PUB socket, `tcp://host:port`; a `*` host means the worker's own (from `base_url`),
    so `tcp://*:5557` suits every worker, DNS-discovered ones included."""
    topic: str = ""
    """The topic the worker publishes under (vLLM's `topic`, empty by default: every message)."""
    block_size: Annotated[int, msgspec.Meta(ge=1)] = 16
    """Tokens per KV block (vLLM's `--block-size`, 16 by default); the events' own block size wins."""
    tokenizer: str
    """How to cut prompts into the worker's tokens: `simulator` (the project's simulator), or the path of the
    model's `tokenizer.json` (Hugging Face `tokenizers`)."""
    chat_template: str | None = None
    """With a `tokenizer.json`: the model's Jinja chat template, a file; None: the `chat_template` of the
    `tokenizer_config.json` beside the tokenizer."""


class WorkerSpec(_Strict, frozen=True):
    name: str
    kind: WorkerKind
    models: tuple[str | ServedModel, ...]
    base_url: str | None = None
    weight: Annotated[int, msgspec.Meta(ge=0)] = 1
    api_key_env: str | None = None
    timeouts: Timeouts = Timeouts()
    local: LocalProcess | None = None
    discovery: Literal["static", "dns"] = "static"
    """`dns`: the base URL's host name is resolved on an interval, one worker per address
    (a Kubernetes headless Service)."""
    send_request_id: bool = True
    """Forward `X-Request-Id` to the worker (its logs then name the gateway's request)."""
    max_concurrent: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Requests this gateway process sends the worker at once, all its models together; when every
    worker of a model is full, requests wait in the model's `queue`. None (default): no limit."""
    kv_events: KvEventsSpec | None = None
    """The worker publishes its KV-cache events: the gateway subscribes (see `KvEventsSpec`)."""

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
    health: HealthSpec = HealthSpec()
    outlier: OutlierSpec = OutlierSpec()
    retries: RetrySpec = RetrySpec()

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
    problems = check_catalog(catalog)
    if problems:
        raise CatalogError(source, problems)
    return catalog


def _describe_validation_error(message: str) -> str:
    # msgspec says "<reason> - at `$.workers[0].kind`": put the path first, as the other problems do.
    reason, sep, where = message.rpartition(" - at ")
    return f"{where.strip('`')}: {reason}" if sep else f"$: {message}"


