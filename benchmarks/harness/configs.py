"""The gateway configurations the benchmarks measure: what each turns on, its goals, and what it needs
besides the catalog (a keys file, a Redis). How a running gateway is checked to be in one: config_checks.py.

Every configuration is `bare` plus the features it names; metrics are always on (the gateway has no
switch for them), so every row pays for them. What the cache does is decided by the workload: the
`cache-miss` workload changes the user message on every request (so each one is looked up, forwarded and
stored), the `cache-hit` workload sends one constant `temperature: 0` body.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import gateway
from benchmarks.load import workloads
from testkit.otlp_receiver import OtlpReceiver
from testkit.redis_server import RedisServer, preferred_binary


@dataclass(frozen=True, slots=True)
class Goal:
    min_requests_per_s: float
    max_overhead_p50_ms: float | None = None
    """Gateway p50 minus direct p50 at concurrency 1."""
    max_overhead_p99_ms: float | None = None
    source: str = ""
    """The issue that set it."""


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    name: str
    description: str
    keys: bool = False
    """A keys file with the bench key (`bench-key`); without it the gateway runs in open mode."""
    limits: bool = False
    """Never-refusing limits on that key, counted in a Redis the benchmark starts."""
    cache: bool = False
    """GATEWAY_CACHE=true (else false: the cache is off, not merely bypassed)."""
    cache_in_redis: bool = False
    """The cache in Redis (REDIS_URL) rather than in the process's memory."""
    log_requests: bool = False
    """LOG_LEVEL=info: one JSON log line per request (to the gateway's log file); else warning."""
    tracing: bool = False
    """OpenTelemetry tracing on, every request sampled: its spans exported (OTLP/HTTP, batched) to a sink the
    benchmark starts on loopback, which reads and drops them (`testkit.otlp_receiver`)."""
    console: bool = False
    """An admin key (GATEWAY_ADMIN_KEY): the operator console is served at /console (off without one)."""
    workload: str = "plain"
    goal: Goal | None = None

    @property
    def redis(self) -> bool:
        return self.limits or self.cache_in_redis

    @property
    def script(self) -> Path:
        return workloads.WORKLOADS[self.workload].script

    def environment(self, workers: int = 1) -> dict[str, str]:
        """The variables that put `llm-gateway serve` in this configuration (besides keys and Redis)."""
        env = {
            "GATEWAY_CACHE": "true" if self.cache else "false",
            "LOG_LEVEL": "info" if self.log_requests else "warning",
            "GATEWAY_WORKERS": str(workers),
            "GATEWAY_DRAIN_SECONDS": "0",  # stop at once between configurations
        }
        if self.console:
            env["GATEWAY_ADMIN_KEY"] = CONSOLE_ADMIN_KEY
        return env


CONSOLE_ADMIN_KEY = "sk-gw-bench-admin-key-for-the-console"
"""The admin key of the `auth-console` configuration (it turns the console on; the load never uses it)."""

BARE_GOAL = Goal(2500.0, 0.5, source="issue 2")
CHECKED_GOAL = Goal(1500.0, 1.0, source="issue 5")
ALL_FEATURES_GOAL = Goal(1500.0, 1.0, 3.0, source="issue 11")
CACHE_HIT_GOAL = Goal(3000.0, source="issue 6")

CONFIGS: dict[str, GatewayConfig] = {
    config.name: config
    for config in (
        GatewayConfig("bare", "open mode, cache off, LOG_LEVEL=warning", goal=BARE_GOAL),
        GatewayConfig("auth", "keys file, one key, no limits: SHA-256 + constant-time compare", keys=True,
                      goal=CHECKED_GOAL),
        GatewayConfig("auth-console", "auth, and an admin key: the operator console served at /console", keys=True,
                      console=True, goal=CHECKED_GOAL),
        GatewayConfig("limits", "auth + never-refusing limits in Redis: admit script before, settle after",
                      keys=True, limits=True, goal=CHECKED_GOAL),
        GatewayConfig("cache-miss", "open mode, in-memory cache, every request a miss (looked up, forwarded, stored)",
                      cache=True, workload="cache-miss"),
        GatewayConfig("cache-hit", "open mode, in-memory cache, every request after the first a hit",
                      cache=True, workload="cache-hit", goal=CACHE_HIT_GOAL),
        GatewayConfig("logs", "open mode, LOG_LEVEL=info: the request's JSON log line (metrics: always on)",
                      log_requests=True),
        GatewayConfig("all", "all features on: auth + Redis limits + cache miss in Redis + metrics + log line",
                      keys=True, limits=True, cache=True, cache_in_redis=True, log_requests=True,
                      workload="cache-miss", goal=ALL_FEATURES_GOAL),
        GatewayConfig("tracing", "open mode, cache off, OpenTelemetry tracing on: every request's spans exported "
                      "(OTLP/HTTP) to a sink that drops them", tracing=True),
        GatewayConfig("all-traced", "all features on (as `all`) and OpenTelemetry tracing, every request sampled",
                      keys=True, limits=True, cache=True, cache_in_redis=True, log_requests=True, tracing=True,
                      workload="cache-miss"),
        GatewayConfig("cache-miss-redis", "open mode, cache in Redis, every request a miss", cache=True,
                      cache_in_redis=True, workload="cache-miss"),
        GatewayConfig("cache-hit-redis", "open mode, cache in Redis, every request after the first a hit",
                      cache=True, cache_in_redis=True, workload="cache-hit", goal=CACHE_HIT_GOAL),
    )
}  # fmt: skip
DEFAULT_CONFIGS = ("bare", "auth", "limits", "cache-miss", "cache-hit", "logs", "all")


@dataclass(slots=True)
class Setup:
    """What a started configuration needs besides the catalog: its keys file, its Redis, its trace sink."""

    config: GatewayConfig
    keys_file: Path | None = None
    redis: RedisServer | None = None
    trace_sink: OtlpReceiver | None = None

    @property
    def redis_url(self) -> str | None:
        return None if self.redis is None else self.redis.url

    @property
    def environment(self) -> dict[str, str]:
        """The variables that point the gateway at what was started for it (the trace sink)."""
        if self.trace_sink is None:
            return {}
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.trace_sink.endpoint, "OTEL_SDK_DISABLED": "false",
                "OTEL_TRACES_SAMPLER": "parentbased_always_on"}


@contextlib.asynccontextmanager
async def prepared(
    config: GatewayConfig, workdir: Path, say: Callable[[str], None] | None = None
) -> AsyncIterator[Setup]:
    """The keys file, the trace sink and (when the configuration needs one) a fresh Redis, stopped on the
    way out."""
    setup = Setup(config)
    if config.keys:
        setup.keys_file = gateway.write_keys_file(workdir, limits=config.limits)
    with contextlib.ExitStack() as sinks:
        if config.tracing:
            setup.trace_sink = sinks.enter_context(OtlpReceiver())
            if say is not None:
                say(f"trace sink (OTLP/HTTP, drops what it reads) at {setup.trace_sink.endpoint}")
        if not config.redis:
            yield setup
            return
        server = RedisServer(binary=preferred_binary())
        if say is not None:
            say(f"starting Redis ({server.binary}) on port {server.port}")
        try:
            await asyncio.to_thread(server.start)
            setup.redis = server
            yield setup
        finally:
            await asyncio.to_thread(server.close)
