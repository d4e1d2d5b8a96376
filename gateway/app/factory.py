"""The app factory: builds the ASGI app from settings and a catalog, with every collaborator passed in."""

from __future__ import annotations

import asyncio

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp

from gateway.app.gc_tuning import freeze_startup_heap
from gateway.app.live_metrics import LimitStateCollector, WorkerStateCollector
from gateway.app.store_factory import StateStores, stores_from_settings
from gateway.auth import KeyLimits
from gateway.auth.authenticator import Authenticator
from gateway.auth.configured_keys import configured_keys, keys_required
from gateway.cache.response_cache import ResponseCache
from gateway.capture.config import CaptureConfig
from gateway.capture.interactions import InteractionCapture
from gateway.http.console import console_router
from gateway.http.drain_gate import DrainGate
from gateway.http.error_rendering import ErrorShape, exception_handler
from gateway.http.fast_path import InferenceASGI
from gateway.http.request_observer import RequestObserver
from gateway.http.routes import admin_routes, keys_routes, openai_routes, routing_routes
from gateway.http.routes.anthropic import COUNT_TOKENS, anthropic_routes
from gateway.http.routes.audio import audio_routes
from gateway.http.routes.feedback import feedback_routes
from gateway.http.routes.health import health_routes
from gateway.http.routes.mobile import mobile_routes
from gateway.http.routes.responses import responses_fast_path, responses_routes
from gateway.http.routes.workers import workers_routes
from gateway.inference.admission import AdmissionControl
from gateway.inference.handler import InferenceHandler
from gateway.inference.lifecycle import Lifecycle
from gateway.inference.pipeline import InferencePipeline
from gateway.inference.responses_turn import StoredResponses
from gateway.inference.token_counting import TokenCounter
from gateway.observability.allocation_snapshots import AllocationSnapshots
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.tracing_setup import tracer_from_env
from gateway.settings import Settings
from gateway.surfaces import ANTHROPIC_MESSAGES, SurfaceRegistry
from gateway.upstream.client import WorkerClient
from gateway.workers.active_catalog import ActiveCatalog, CatalogHolder
from gateway.workers.catalog_reload import CatalogWatcher
from gateway.workers.control_client import ControlClient
from gateway.workers.health_monitor import HealthMonitor
from gateway.workers.kv_feeds import KvEventFeeds
from gateway.workers.model_setup import pull_missing
from routing.catalog import Catalog


def create_app(settings: Settings, catalog: Catalog, *, catalog_source: str | None = None,
               background: bool = True, stores: StateStores | None = None, metrics: GatewayMetrics | None = None,
               lifecycle: Lifecycle | None = None, freeze_heap: bool = False,
               surfaces: SurfaceRegistry | None = None) -> ASGIApp:
    """`catalog_source`: the file to hot-reload from (SIGHUP, file change, POST /admin/reload).
    `background`: run health checks, load scrapes and DNS discovery (tests may turn them off).
    `stores`: the key and limit stores (default: from settings, Redis or memory).
    `freeze_heap`: once started, keep the startup heap out of garbage collections (`gateway.app.gc_tuning`;
    for servers: a process that builds many apps, like the test suite, should not).
    `metrics`: the Prometheus metrics and their registry; `lifecycle`: draining and stopping, which the
    server drives (`gateway.inference.lifecycle`); `surfaces`: the API surfaces served (default: every
    one of `gateway.surfaces.BUILTIN_SURFACES`)."""
    stores = stores or stores_from_settings(settings)
    metrics = metrics or GatewayMetrics()
    lifecycle = lifecycle or Lifecycle()
    runtimes = CatalogHolder(ActiveCatalog.build(catalog, settings.extra), settings.extra, source=catalog_source)
    client = WorkerClient()
    admission = AdmissionControl(stores.limits, metrics, default_reserve_tokens=settings.default_reserve_tokens)
    authenticator = Authenticator(
        configured=configured_keys(settings), store=stores.keys, open_mode=not keys_required(settings),
        anonymous_limits=KeyLimits(requests_per_minute=settings.rate_limit_rpm or None))
    cache = ResponseCache(stores.cache, metrics, default_ttl=settings.cache_ttl) if settings.cache_enabled else None
    pipeline = InferencePipeline(runtimes, client, admission, metrics, cache=cache, lifecycle=lifecycle)
    capture = InteractionCapture(CaptureConfig.from_settings(settings))
    redis_ping = stores.limits.ping if settings.redis_url else None
    metrics.live.register(WorkerStateCollector(runtimes))
    metrics.live.register(LimitStateCollector(stores.limits))
    control = ControlClient(settings.extra)  # the workers' control planes (the data plane is `client`)
    monitor = HealthMonitor(runtimes, control, stores.overlays)
    kv_feeds = KvEventFeeds(runtimes)  # workers' KV-cache events, for prefix_affinity_precise
    watcher = CatalogWatcher(runtimes)
    on_startup = [client.start, watcher.start, capture.start, lifecycle.start, stores.usage.start]
    on_startup += [monitor.start, kv_feeds.start] if background else []
    pulls: set[asyncio.Task[list[str]]] = set()
    if settings.pull_required:
        async def start_pulls() -> None:
            task = asyncio.create_task(pull_missing(catalog, control), name="model-setup")
            pulls.add(task)
            task.add_done_callback(pulls.discard)

        on_startup.append(start_pulls)
    snapshots = AllocationSnapshots.from_env(settings.extra)  # None (the default): no SIGUSR2 handler
    on_startup += [snapshots.start] if snapshots is not None else []
    on_startup += [freeze_startup_heap] if freeze_heap else []
    on_shutdown = [watcher.stop, client.close, admission.drain, capture.close, stores.close]
    on_shutdown += ([monitor.stop, kv_feeds.stop] if background else []) + [control.aclose]
    on_shutdown += [snapshots.stop] if snapshots is not None else []
    tracer = tracer_from_env(settings.extra)  # None (the default): no span anywhere
    on_shutdown += [tracer.shutdown] if tracer is not None else []  # last: the spans of the requests drained
    inference = InferenceHandler(pipeline, runtimes, authenticator, capture)
    surfaces = surfaces or SurfaceRegistry()
    responses = StoredResponses(stores.responses, settings.responses_ttl)
    counter = TokenCounter(client)
    cors = CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None
    app = Litestar(
        route_handlers=[*openai_routes(inference, surfaces, runtimes, authenticator),
                        *responses_routes(inference, responses, authenticator, runtimes, counter),
                        *anthropic_routes(runtimes, authenticator, counter),
                        *audio_routes(inference, max_bytes=settings.audio_max_bytes,
                                      lookahead=settings.audio_lookahead_bytes),
                        *feedback_routes(capture, authenticator),
                        *routing_routes(runtimes, authenticator), *admin_routes(runtimes, authenticator),
                        *keys_routes(stores.keys, stores.limits, authenticator, stores.usage),
                        *workers_routes(runtimes, stores.overlays, authenticator, control),
                        *health_routes(runtimes, metrics, lifecycle, redis_ping),
                        *mobile_routes(inference, runtimes, authenticator, stores.sessions, settings.extra,
                                       control),
                        console_router(authenticator=authenticator, keys=stores.keys, limits=stores.limits,
                                       runtimes=runtimes, overlays=stores.overlays, control=control, capture=capture,
                                       metrics=metrics, usage=stores.usage,
                                       secret=settings.extra.get("GATEWAY_CONSOLE_SECRET", ""))],
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        exception_handlers={Exception: exception_handler(_error_shapes(surfaces))},
        request_max_body_size=settings.max_body_bytes,
        cors_config=cors,
        openapi_config=OpenAPIConfig(title="llm-gateway", version="0.1.0", path="/schema"),
        debug=False,
        logging_config=None,  # the gateway configures structlog itself (gateway.observability.logs)
    )
    hot_path = DrainGate(InferenceASGI(app, inference, surfaces, max_body_bytes=settings.max_body_bytes,
                                       cors=cors is not None, turns=responses_fast_path(responses)), lifecycle)
    # Outside Litestar, so that every response (unknown routes included) carries x-request-id,
    # and every request is measured and logged once.
    return RequestObserver(hot_path, metrics, log_level=settings.log_level, max_header_bytes=settings.max_header_bytes,
                           tracer=tracer, usage=stores.usage)


def _error_shapes(surfaces: SurfaceRegistry) -> dict[str, ErrorShape]:
    """The paths whose errors take a surface's shape: each surface's, and Messages' token counting."""
    shapes: dict[str, ErrorShape] = {path: surface.error_body for surface in surfaces for path in surface.paths}
    shapes[COUNT_TOKENS] = ANTHROPIC_MESSAGES.error_body
    return shapes
