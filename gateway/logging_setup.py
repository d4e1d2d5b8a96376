"""structlog configuration: JSON lines on stderr (console format on a terminal) at the configured level,
with secrets redacted at the logger: API keys, bearer tokens and the configured secrets never reach a
log line, whatever a caller puts in it."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from gateway.settings import Settings

REDACTED = "[redacted]"
_PATTERNS = re.compile(r"(\bsk-[A-Za-z0-9_\-]{6,}|(?i:bearer)\s+[^\s\"',]+)")


def known_secrets(settings: Settings) -> list[str]:
    """The secrets this process knows: its own keys, and worker API keys named by `*_API_KEY` variables."""
    values = [settings.api_key, settings.admin_key]
    values += [v for k, v in settings.extra.items() if k.endswith(("_API_KEY", "_TOKEN", "_SECRET"))]
    return [v for v in values if v and len(v) >= 6]


class SecretRedactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return _PATTERNS.sub(REDACTED, value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if isinstance(value, str | dict | list | tuple):
                event[key] = self.scrub(value)
        return event


def configure_logging(level: str, *, secrets: Iterable[str] = (), console: bool | None = None) -> None:
    numeric = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(level=numeric, format="%(message)s")
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))  # control-plane polls are noise
    if console is None:
        console = sys.stderr.isatty()
    renderer: Any = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            SecretRedactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
