"""Whether the gateway traces, decided once at startup from OpenTelemetry's own variables, and the tracer
it then uses (`gateway.observability.tracing`).

Off by default. On when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or
`OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended) names a collector, unless `OTEL_SDK_DISABLED` is
true or `OTEL_TRACES_EXPORTER` is `none`. Spans go out as OTLP over HTTP/protobuf, in batches (a
`BatchSpanProcessor`: a thread of its own, never the event loop), and are flushed when the app shuts
down. Everything else the OpenTelemetry SDK reads itself from the process environment:
`OTEL_SERVICE_NAME` (default here: `llm-gateway`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and
`OTEL_TRACES_SAMPLER_ARG`, `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`, `_TIMEOUT`, `_COMPRESSION`, the
`OTEL_BSP_*` batch sizes and `OTEL_PROPAGATORS`. `GATEWAY_TRACE_CONTENT=true` puts prompts and whole
answers in spans (never by default).

The SDK is the optional `otel` extra: when it is missing, the gateway says so once and runs untraced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from gateway.observability.tracing import GatewayTracer

_log = structlog.get_logger("gateway.observability.tracing")

SERVICE_NAME = "llm-gateway"
"""`service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one."""


def traces_endpoint(env: Mapping[str, str]) -> str | None:
    """Where spans go (the OTLP/HTTP traces URL), or None: tracing is off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    if explicit := env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return explicit
    if base := env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        return base.rstrip("/") + "/v1/traces"
    return None


def trace_content(env: Mapping[str, str]) -> bool:
    """GATEWAY_TRACE_CONTENT: prompts and answers in spans (default: never)."""
    return env.get("GATEWAY_TRACE_CONTENT", "").strip().lower() in ("true", "1", "yes", "on")


def tracer_from_env(env: Mapping[str, str]) -> GatewayTracer | None:
    """The app's tracer, or None when tracing is off (or the `otel` extra is not installed)."""
    endpoint = traces_endpoint(env)
    if endpoint is None:
        return None
    try:
        return _built(endpoint, content=trace_content(env))
    except ImportError as exc:
        _log.warning("tracing_unavailable", endpoint=endpoint, error=str(exc),
                     fix="pip install 'llm-gateway[otel]' (the OpenTelemetry SDK and its OTLP/HTTP exporter)")
        return None


def _built(endpoint: str, *, content: bool) -> GatewayTracer:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from gateway.observability.tracing import GatewayTracer

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER(_ARG)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))

    async def shutdown() -> None:
        await asyncio.to_thread(provider.shutdown)  # exports what is queued: blocking, so off the loop

    return GatewayTracer(provider.get_tracer("llm-gateway"), content=content, shutdown=shutdown)
