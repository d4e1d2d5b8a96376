"""Running the gateway: uvicorn (uvloop + httptools) in front of the app, local workers beside it.

Stopping (`gateway.inference.lifecycle`): SIGTERM fails readiness and refuses new requests at once, lets what is under
way go on for GATEWAY_DRAIN_SECONDS, then ends what is left (streams get an error event and `[DONE]`,
waiting calls a 503) and hands over to uvicorn's own shutdown, which then has little to wait for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
import tempfile
from types import FrameType

import structlog
import uvicorn
import uvloop

from gateway.app.factory import create_app
from gateway.auth.authenticator import is_loopback
from gateway.auth.configured_keys import KeysFileError, configured_keys, keys_required
from gateway.coaching.config import MobileFiles, load_mobile_config
from gateway.inference.lifecycle import Lifecycle
from gateway.observability.logs import configure_logging, known_secrets
from gateway.settings import Settings
from gateway.workers.local_commands import LocalWorkerError
from gateway.workers.local_processes import LocalWorkerSupervisor
from gateway.workers.port_holder import port_in_use
from routing.catalog import Catalog, CatalogError, load_catalog

_log = structlog.get_logger("gateway.app.server")


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
    busy = port_in_use(settings.host, settings.port)  # said before any local worker is started
    if busy:
        print(f"llm-gateway: {busy}", file=sys.stderr)
        return 1
    local = [w for w in catalog.workers if w.kind == "local"] if start_local_workers else []
    try:
        supervisor = LocalWorkerSupervisor(local, settings.llama_server)
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


def _keepalive_s(settings: Settings) -> int:
    # uvicorn takes whole seconds; 0 would close every connection after one request.
    return max(1, round(settings.keepalive_seconds))


GRACE_AFTER_DRAIN_S = 1
"""uvicorn's graceful shutdown after the drain deadline: every stream and call has just been ended, so this
only covers clients too slow to read their last bytes (the process exits within drain + about 2 s)."""


class _DrainingServer(uvicorn.Server):
    """SIGTERM: drain for `drain_s`, then stop (`Lifecycle.on_signal`) and shut down as uvicorn does.
    SIGINT (Ctrl-C), a second SIGTERM or `drain_s` 0: stop at once. Either way no local worker is
    started again from the signal on (one killed by the same signal, as systemd signals every process of
    the service, stays down); they are stopped while the server shuts down, after its requests ended."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_s: float,
                 supervisor: LocalWorkerSupervisor) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._drain_s = drain_s
        self._supervisor = supervisor

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._supervisor.begin_stopping()
        self._lifecycle.on_signal(sig, self._drain_s, lambda: super(_DrainingServer, self).handle_exit(sig, frame))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, the local workers stopped meanwhile: every stream and call was ended at the
        drain deadline, so nothing needs them any more. Here, because once `serve` returns uvicorn raises
        the signal it caught again, and SIGTERM's default action ends the process on the spot."""
        workers_stopped = asyncio.ensure_future(self._supervisor.stop())
        try:
            await super().shutdown(sockets)
        finally:
            await workers_stopped


def _run_one(settings: Settings, catalog: Catalog, supervisor: LocalWorkerSupervisor) -> None:
    lifecycle = Lifecycle()
    app = create_app(settings, catalog, catalog_source=settings.config_path, lifecycle=lifecycle, freeze_heap=True)
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            loop="none", http="httptools", access_log=False, lifespan="on",
                            log_level=_uvicorn_log_level(settings), timeout_graceful_shutdown=GRACE_AFTER_DRAIN_S,
                            proxy_headers=False, server_header=False,
                            timeout_keep_alive=_keepalive_s(settings))
    server = _DrainingServer(config, lifecycle, settings.drain_seconds, supervisor)

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
    # Each process imports gateway.app.asgi, which reads its settings from the environment; their metrics
    # meet in a shared directory (prometheus_client's multi-process mode). SIGTERM reaches this process,
    # which passes it on to each worker process; each drains (gateway.app.asgi hooks its signals) and exits.
    # The local workers (in sessions of their own, out of the signal's reach) are stopped after that.
    os.environ.update({"GATEWAY_CONFIG": settings.config_path, "LOG_LEVEL": settings.log_level})
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="llm-gateway-metrics-"))
    supervisor.start_in_thread()
    try:
        uvicorn.run("gateway.app.asgi:app", host=settings.host, port=settings.port, workers=settings.workers,
                    loop="uvloop", http="httptools", access_log=False, log_level=_uvicorn_log_level(settings),
                    timeout_graceful_shutdown=GRACE_AFTER_DRAIN_S, proxy_headers=False, server_header=False,
                    timeout_keep_alive=_keepalive_s(settings))
    finally:
        supervisor.stop_thread()
