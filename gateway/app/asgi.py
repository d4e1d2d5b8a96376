"""`gateway.app.asgi:app`, built from the environment, for running under any ASGI server
(`uvicorn gateway.app.asgi:app`, `granian --interface asgi gateway.app.asgi:app`; `GATEWAY_WORKERS>1` runs it in
uvicorn's worker processes). At startup it puts the SIGTERM drain (`GATEWAY_DRAIN_SECONDS`) in front of
the server's own signal handlers."""

from __future__ import annotations

from gateway.app.factory import create_app
from gateway.inference.lifecycle import Lifecycle
from gateway.observability.logs import configure_logging, known_secrets
from gateway.settings import load_settings
from routing.catalog import load_catalog

_settings = load_settings()
configure_logging(_settings.log_level, secrets=known_secrets(_settings))
app = create_app(_settings, load_catalog(_settings.config_path), catalog_source=_settings.config_path,
                 lifecycle=Lifecycle(signal_drain_s=_settings.drain_seconds), freeze_heap=True)
