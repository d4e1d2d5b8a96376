"""In-process settings, read once from the environment (the seed's names where they exist)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.operator_patterns import parse_patterns


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

    audio_max_bytes: int = 25 * 1024 * 1024
    """GATEWAY_AUDIO_MAX_BYTES: larger audio uploads (`/v1/audio/*`, streamed to the worker, never held
    whole) are refused with 413; 25 MiB, OpenAI's limit."""

    audio_lookahead_bytes: int = 1024 * 1024
    """GATEWAY_AUDIO_LOOKAHEAD_BYTES: how far into an audio upload the gateway reads (and holds) looking for
    its `model` field, when `file` comes first; past it the request is a 400 on `model`."""

    max_header_bytes: int = 16 * 1024
    """GATEWAY_MAX_HEADER_BYTES: requests whose header names and values add up to more are refused with 431."""

    workers: int = 1
    """GATEWAY_WORKERS: server processes to run (each with its own event loop)."""

    start_local_workers: bool = True
    """GATEWAY_START_LOCAL_WORKERS: start the catalog's `local` workers as child processes."""

    llama_server: str | None = None
    """GATEWAY_LLAMA_SERVER: the `llama-server` binary local workers run; default: the one `make install`
    built and linked beside the gateway's Python (`.venv/bin/llama-server`), else the PATH's."""

    redis_url: str | None = None
    """REDIS_URL: shared state (keys, limits) for several replicas; unset: in-memory, one process."""

    redis_timeout_s: float = 1.0
    """GATEWAY_REDIS_TIMEOUT: seconds to wait for a Redis answer before treating Redis as down (then
    limits fail open or closed, see RATE_LIMIT_FAIL_MODE)."""

    api_key: str | None = field(default=None, repr=False)
    """LLM_API_KEY: a user key (all models) that clients send, as in the UpCoach stack."""

    admin_key: str | None = field(default=None, repr=False)
    """GATEWAY_ADMIN_KEY: an admin key (the admin API and every model)."""

    keys_file: str | None = None
    """GATEWAY_KEYS_FILE: a YAML file of keys (hashes, scopes, limits); see docs/configuration.md."""

    rate_limit_rpm: int = 0
    """RATE_LIMIT_RPM: requests per minute for callers without a limit of their own: anonymous clients
    (per IP, open mode only) and LLM_API_KEY. 0 (the default): no limit."""

    rate_limit_fail_open: bool = True
    """RATE_LIMIT_FAIL_MODE: `open` (default: when Redis is down, each replica limits on its own) or
    `closed` (refuse with 503 and Retry-After)."""

    cache_enabled: bool = True
    """GATEWAY_CACHE: the response cache (deterministic requests, and rules or models that opt in)."""

    cache_ttl: float = 300.0
    """CACHE_TTL: seconds a cached answer lives, unless its rule or model says otherwise."""

    responses_ttl: float = 30 * 24 * 3600.0
    """GATEWAY_RESPONSES_TTL: seconds a stored response of the Responses API lives (`store`,
    `previous_response_id`, `GET /v1/responses/{id}`); 30 days by default."""

    usage_flush_s: float = 5.0
    """GATEWAY_USAGE_FLUSH_SECONDS: with REDIS_URL, how often each replica adds the usage per key and day
    it counted to Redis (`GET /admin/keys/{id}/usage` shows other replicas' requests this late)."""

    cache_max_bytes: int = 64 * 1024 * 1024
    """GATEWAY_CACHE_MAX_BYTES: the in-memory cache's size (least recently used entries go first)."""

    cache_max_entry_bytes: int = 1024 * 1024
    """GATEWAY_CACHE_MAX_ENTRY_BYTES: larger answers are not cached."""

    pull_required: bool = False
    """GATEWAY_PULL_REQUIRED: at startup, pull the catalog's required models onto Ollama workers that
    lack them (in the background; progress in the logs)."""

    drain_seconds: float = 5.0
    """GATEWAY_DRAIN_SECONDS: after SIGTERM, readiness fails and new requests get 503 at once, while those
    under way go on this long; then open streams get an error event and `[DONE]`, calls still waiting
    a 503, and the process exits (0: at once)."""

    keepalive_seconds: float = 75.0
    """GATEWAY_KEEPALIVE_SECONDS: how long an idle client connection is kept open. Longer than a load
    balancer's or a client pool's idle timeout (ALB 60 s, aiohttp 15 s, httpx 5 s), so the client side
    always closes first and never sends a request on a connection the gateway is closing."""

    default_reserve_tokens: int = 512
    """GATEWAY_DEFAULT_MAX_TOKENS: completion tokens reserved for a request without `max_tokens`."""

    capture_dir: str = "captures"
    """GATEWAY_CAPTURE_DIR: where captured interactions and feedback go (JSONL files, created at the first
    capture). Capture is opt-in per key (`metadata.capture: "true"`) or per route / model (`capture: true`)."""

    capture_file_bytes: int = 64 * 1024 * 1024
    """GATEWAY_CAPTURE_FILE_BYTES: a capture file is closed and a new one started at this size."""

    capture_max_bytes: int = 1024 * 1024 * 1024
    """GATEWAY_CAPTURE_MAX_BYTES: the oldest capture files are deleted to keep the directory under this."""

    capture_redact: tuple[str, ...] = ()
    """GATEWAY_CAPTURE_REDACT: RE2 patterns (one, or a JSON array) replaced by `[redacted]` in captures;
    e-mail addresses and phone numbers are always redacted."""

    extra: Mapping[str, str] = field(default_factory=dict, repr=False)
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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number of seconds") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r}: must not be negative")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value == 0:
        raise SettingsError(f"{name}=0: must be more than 0")
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


def _redaction_patterns(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    try:
        return parse_patterns(env.get(name, ""))
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    level = env.get("LOG_LEVEL", "info").strip().lower() or "info"
    if level not in _LEVELS:
        raise SettingsError(f"LOG_LEVEL={level!r}: expected one of debug, info, warning, error")
    origins = tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())
    fail_mode = env.get("RATE_LIMIT_FAIL_MODE", "open").strip().lower() or "open"
    if fail_mode not in ("open", "closed"):
        raise SettingsError(f"RATE_LIMIT_FAIL_MODE={fail_mode!r}: expected open or closed")
    capture_file_bytes = _int(env, "GATEWAY_CAPTURE_FILE_BYTES", 64 * 1024 * 1024)
    capture_max_bytes = _int(env, "GATEWAY_CAPTURE_MAX_BYTES", 1024 * 1024 * 1024)
    if capture_max_bytes < capture_file_bytes:
        raise SettingsError("GATEWAY_CAPTURE_MAX_BYTES must be at least GATEWAY_CAPTURE_FILE_BYTES")
    return Settings(
        host=env.get("GATEWAY_HOST", "127.0.0.1").strip() or "127.0.0.1",
        port=_int(env, "GATEWAY_PORT", 3100),
        config_path=env.get("GATEWAY_CONFIG", "config/models.yaml").strip() or "config/models.yaml",
        log_level="warning" if level == "warn" else level,
        cors_origins=origins,
        max_body_bytes=_int(env, "GATEWAY_MAX_BODY_BYTES", 4 * 1024 * 1024),
        max_header_bytes=_int(env, "GATEWAY_MAX_HEADER_BYTES", 16 * 1024),
        audio_max_bytes=_int(env, "GATEWAY_AUDIO_MAX_BYTES", 25 * 1024 * 1024),
        audio_lookahead_bytes=_int(env, "GATEWAY_AUDIO_LOOKAHEAD_BYTES", 1024 * 1024),
        workers=_int(env, "GATEWAY_WORKERS", 1),
        start_local_workers=_bool(env, "GATEWAY_START_LOCAL_WORKERS", True),
        llama_server=env.get("GATEWAY_LLAMA_SERVER", "").strip() or None,
        redis_url=env.get("REDIS_URL", "").strip() or None,
        redis_timeout_s=_float(env, "GATEWAY_REDIS_TIMEOUT", 1.0),
        api_key=env.get("LLM_API_KEY", "").strip() or None,
        admin_key=env.get("GATEWAY_ADMIN_KEY", "").strip() or None,
        keys_file=env.get("GATEWAY_KEYS_FILE", "").strip() or None,
        rate_limit_rpm=_int(env, "RATE_LIMIT_RPM", 0, minimum=0),
        rate_limit_fail_open=fail_mode == "open",
        default_reserve_tokens=_int(env, "GATEWAY_DEFAULT_MAX_TOKENS", 512),
        drain_seconds=_float(env, "GATEWAY_DRAIN_SECONDS", 5.0),
        keepalive_seconds=_float(env, "GATEWAY_KEEPALIVE_SECONDS", 75.0),
        cache_enabled=_bool(env, "GATEWAY_CACHE", True),
        pull_required=_bool(env, "GATEWAY_PULL_REQUIRED", False),
        cache_ttl=_float(env, "CACHE_TTL", 300.0),
        responses_ttl=_float(env, "GATEWAY_RESPONSES_TTL", 30 * 24 * 3600.0),
        usage_flush_s=_positive(env, "GATEWAY_USAGE_FLUSH_SECONDS", 5.0),
        cache_max_bytes=_int(env, "GATEWAY_CACHE_MAX_BYTES", 64 * 1024 * 1024),
        cache_max_entry_bytes=_int(env, "GATEWAY_CACHE_MAX_ENTRY_BYTES", 1024 * 1024),
        capture_dir=env.get("GATEWAY_CAPTURE_DIR", "").strip() or "captures",
        capture_file_bytes=capture_file_bytes,
        capture_max_bytes=capture_max_bytes,
        capture_redact=_redaction_patterns(env, "GATEWAY_CAPTURE_REDACT"),
        extra=dict(env),
    )
