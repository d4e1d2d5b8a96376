"""Running the gateway: uvicorn (uvloop + httptools) in front of the app, local workers beside it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import tempfile
from types import FrameType

import structlog
import uvicorn
import uvloop

from gateway.app import create_app
from gateway.authentication import is_loopback
from gateway.coaching.config import MobileFiles, load_mobile_config
from gateway.endpoints.health import Lifecycle
from gateway.key_sources import KeysFileError, configured_keys, keys_required
from gateway.local_workers import LocalWorkerError, LocalWorkerSupervisor
from gateway.logging_setup import configure_logging, known_secrets
from gateway.settings import Settings
from routing.catalog import Catalog, CatalogError, load_catalog

_log = structlog.get_logger("gateway.server")


def serve(settings: Settings, *, config: str | None = None, host: str | None = None,
          port: int | None = None, workers: int | None = None, start_local_workers: bool = True) -> int:
    settings = dataclasses.replace(settings, config_path=config or settings.config_path,
                                   host=host or settings.host, port=port or settings.port,
                                   workers=workers or settings.workers)
    if not keys_required(settings) and not is_loopback(settings.host):
        print(f"llm-gateway: refusing to listen on {settings.host} without API keys: anyone who can reach it "
              "could use every model. Set LLM_API_KEY (a user key), GATEWAY_ADMIN_KEY (an admin key) or "
              "GATEWAY_KEYS_FILE, or bind to loopback (GATEWAY_HOST=127.0.0.1).", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, secrets=known_secrets(settings))
    try:
        catalog = load_catalog(settings.config_path)
        configured_keys(settings)  # a bad keys file stops the start, with its reason
        load_mobile_config(MobileFiles.from_env(settings.extra), catalog)  # so do bad coaching / edge files
    except (CatalogError, KeysFileError) as exc:
        print(exc, file=sys.stderr)
        return 1
    local = [w for w in catalog.workers if w.kind == "local"] if start_local_workers else []
    supervisor = LocalWorkerSupervisor(local)
    try:
        if settings.workers > 1:
            _run_processes(settings, supervisor)
        else:
            _run_one(settings, catalog, supervisor)
    except (LocalWorkerError, KeysFileError) as exc:
        print(f"llm-gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _uvicorn_log_level(settings: Settings) -> str:
    # The gateway logs its own requests; uvicorn only says what goes wrong.
    return "warning" if settings.log_level in ("debug", "info") else settings.log_level


class _DrainingServer(uvicorn.Server):
    """On SIGTERM, fail readiness at once and keep serving for `drain_s` (load balancers and Kubernetes
    endpoints stop sending meanwhile), then shut down as uvicorn does. SIGINT (Ctrl-C) stops at once."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_s: float) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._drain_s = drain_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._drain_s <= 0 or self._lifecycle.draining:
            super().handle_exit(sig, frame)
            return
        self._lifecycle.draining = True
        _log.info("draining", seconds=self._drain_s)
        asyncio.get_running_loop().call_later(self._drain_s, super().handle_exit, sig, frame)


def _run_one(settings: Settings, catalog: Catalog, supervisor: LocalWorkerSupervisor) -> None:
    lifecycle = Lifecycle()
    app = create_app(settings, catalog, catalog_source=settings.config_path, lifecycle=lifecycle)
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            loop="none", http="httptools", access_log=False, lifespan="on",
                            log_level=_uvicorn_log_level(settings), timeout_graceful_shutdown=30,
                            proxy_headers=False, server_header=False)
    server = _DrainingServer(config, lifecycle, settings.drain_seconds)

    async def main() -> None:
        await supervisor.start()
        _log.info("gateway_listening", url=f"http://{settings.host}:{settings.port}", catalog=settings.config_path,
                  try_it=f"curl http://{settings.host}:{settings.port}/v1/models")
        try:
            await server.serve()
        finally:
            await supervisor.stop()

    uvloop.run(main())


def _run_processes(settings: Settings, supervisor: LocalWorkerSupervisor) -> None:
    # Each process imports gateway.asgi, which reads its settings from the environment; their metrics
    # meet in a shared directory (prometheus_client's multi-process mode).
    os.environ.update({"GATEWAY_CONFIG": settings.config_path, "LOG_LEVEL": settings.log_level})
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="llm-gateway-metrics-"))
    supervisor.start_in_thread()
    try:
        uvicorn.run("gateway.asgi:app", host=settings.host, port=settings.port, workers=settings.workers,
                    loop="uvloop", http="httptools", access_log=False, log_level=_uvicorn_log_level(settings),
                    proxy_headers=False, server_header=False)
    finally:
        supervisor.stop_thread()
