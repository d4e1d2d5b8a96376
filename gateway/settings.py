"""In-process settings, read once from the environment (the seed's names where they exist)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    """GATEWAY_HOST: the address to bind. Loopback by default; `0.0.0.0` in containers."""

    port: int = 3100
    """GATEWAY_PORT: the port to listen on (3100, as in the UpCoach stack)."""

    config_path: str = "config/models.yaml"
    """GATEWAY_CONFIG: the model catalog (models, routing rules, workers)."""

    log_level: str = "info"
    """LOG_LEVEL: debug, info, warning (or warn), error."""

    cors_origins: tuple[str, ...] = ()
    """CORS_ORIGINS: comma-separated origins allowed by CORS; empty (the default) turns CORS off."""

    max_body_bytes: int = 4 * 1024 * 1024
    """GATEWAY_MAX_BODY_BYTES: larger request bodies are refused with 413."""

    workers: int = 1
    """GATEWAY_WORKERS: server processes to run (each with its own event loop)."""

    start_local_workers: bool = True
    """GATEWAY_START_LOCAL_WORKERS: start the catalog's `local` workers as child processes."""

    extra: Mapping[str, str] = field(default_factory=dict)
    """Every other variable, for components that read their own (e.g. worker API keys by name)."""


_LEVELS = {"debug", "info", "warning", "warn", "error", "critical"}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    level = env.get("LOG_LEVEL", "info").strip().lower() or "info"
    if level not in _LEVELS:
        raise SettingsError(f"LOG_LEVEL={level!r}: expected one of debug, info, warning, error")
    origins = tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())
    return Settings(
        host=env.get("GATEWAY_HOST", "127.0.0.1").strip() or "127.0.0.1",
        port=_int(env, "GATEWAY_PORT", 3100),
        config_path=env.get("GATEWAY_CONFIG", "config/models.yaml").strip() or "config/models.yaml",
        log_level="warning" if level == "warn" else level,
        cors_origins=origins,
        max_body_bytes=_int(env, "GATEWAY_MAX_BODY_BYTES", 4 * 1024 * 1024),
        workers=_int(env, "GATEWAY_WORKERS", 1),
        start_local_workers=_bool(env, "GATEWAY_START_LOCAL_WORKERS", True),
        extra=dict(env),
    )
