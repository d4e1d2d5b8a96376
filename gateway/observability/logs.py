"""structlog configuration: JSON lines on stderr (console format on a terminal) at the configured level,
with secrets redacted at the logger: API keys, bearer tokens and the configured secrets never reach a
log line, whatever a caller puts in it.

The JSON chain is on the hot path (one line per request at INFO), so each step is the cheap version of
structlog's own: the timestamp is formatted once a second, the redactor looks at all of a line's
strings at once and scrubs value by value only when one may hold a secret, exceptions are formatted
only when there is one, the line is encoded by msgspec and written to stderr with one write of the
line and its newline. `log_line` runs that chain on the request line's own dict, without structlog's
per-call copies of it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

import msgspec
import structlog

from gateway.settings import Settings

REDACTED = "[redacted]"
_PLAIN = frozenset({str, int, float, bool, type(None)})
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

    def may_change(self, text: str) -> bool:
        """False only when `scrub(text)` is `text`: no configured secret, no `sk-`, no `bearer` in any case
        (the patterns' own prefixes). True now and then for text that needs no scrubbing: `/v1/task-1`."""
        if "sk-" in text or "bearer" in text.lower():
            return True
        return any(secret in text for secret in self._secrets)

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        # A line of plain strings and numbers (the request line) is checked at once: its strings joined by
        # a NUL, which no secret holds, so a secret or pattern in any one of them is found in the whole.
        values = event.values()
        if _PLAIN.issuperset(map(type, values)) and not self.may_change(
                "\x00".join([value for value in values if type(value) is str])):
            return event
        for key, value in event.items():
            if isinstance(value, str | dict | list | tuple):
                event[key] = self.scrub(value)
        return event


def merge_contextvars(logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`structlog.contextvars.merge_contextvars`, skipped while no context variable was ever bound (it walks
    every variable of the running context, the server's included, on every line)."""
    bound = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
    if bound is not None and not bound:
        return event
    return structlog.contextvars.merge_contextvars(logger, name, event)


def format_exc_info(logger: Any, name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`structlog.processors.format_exc_info`, called only for a line that has an `exc_info`."""
    if "exc_info" in event:
        return structlog.processors.format_exc_info(logger, name, event)
    return event


class UtcTimestamper:
    """`TimeStamper(fmt="iso", utc=True)`'s `timestamp` (`2026-05-09T07:35:25.123456Z`, `...:25Z` on a
    whole second, like `datetime.isoformat`), with the date and time formatted once a second."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")  # one tuple: threads never see a second with another's text

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        second, nanos = divmod(time.time_ns(), 1_000_000_000)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        micros = nanos // 1000
        event["timestamp"] = f"{cached[1]}.{micros:06d}Z" if micros else cached[1] + "Z"
        return event


def _fallback(value: Any) -> Any:
    """What JSON cannot hold, as structlog's `JSONRenderer` writes it: `__structlog__()`, else `repr`."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


class JsonLineRenderer:
    """structlog's `JSONRenderer` on msgspec: the same keys in the same order with the same values, as
    compact JSON in UTF-8 (bytes for `BytesLogger`, or text). What msgspec refuses (a lone surrogate)
    goes through the standard library, which escapes it. Unlike the standard library, msgspec writes
    NaN and infinities as `null` and dates, UUIDs and bytes (base64) as JSON strings rather than reprs."""

    def __init__(self, *, as_bytes: bool = True) -> None:
        self._encode = msgspec.json.Encoder(enc_hook=_fallback).encode
        self._as_bytes = as_bytes

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> bytes | str:
        try:
            line = self._encode(event)
        except Exception:
            line = json.dumps(event, default=_fallback, separators=(",", ":")).encode()
        return line if self._as_bytes else line.decode()


class _JsonChain:
    """The JSON configuration `configure_logging` installed, to tell whether structlog still runs it."""

    def __init__(self, level: int, config: dict[str, Any]) -> None:
        self.level = level
        self.processors: list[structlog.typing.Processor] = config["processors"]
        self.installed = list(self.processors)
        self.wrapper_class = config["wrapper_class"]
        self.logger_factory = config["logger_factory"]
        self.output = self.logger_factory()

    def in_force(self) -> bool:
        """Not reconfigured since, nor captured (`structlog.testing.capture_logs` swaps the list's contents)."""
        config = structlog.get_config()
        return (config["processors"] is self.processors and config["wrapper_class"] is self.wrapper_class
                and config["logger_factory"] is self.logger_factory and self.processors == self.installed)


_json_chain: _JsonChain | None = None
_LEVELS = logging.getLevelNamesMapping()
_loggers: dict[str, Any] = {}


def log_line(logger_name: str, method: str, event: str, fields: dict[str, Any]) -> None:
    """`getattr(structlog.get_logger(logger_name), method)(event, **fields)` for the hot path (the request
    line); `method` is a level name (`info`, `debug`, ...) and `fields` is consumed.

    While structlog runs the JSON chain `configure_logging` installed, the chain runs on `fields` itself
    and its line is written at once: the same line, without structlog's four copies of the fields on
    the way (its keyword arguments, its context merge). Otherwise (console, a test capturing the log,
    another configuration) the call goes through structlog as usual."""
    chain, level = _json_chain, _LEVELS.get(method.upper())
    if chain is None or level is None or not chain.in_force():
        logger = _loggers.get(logger_name)
        if logger is None:
            logger = _loggers[logger_name] = structlog.get_logger(logger_name)
        getattr(logger, method)(event, **fields)
        return
    if level < chain.level:
        return
    fields["event"] = event
    line: Any = fields
    try:
        for processor in chain.processors:
            line = processor(chain.output, method, line)
    except structlog.DropEvent:
        return
    chain.output.msg(line)


def configure_logging(level: str, *, secrets: Iterable[str] = (), console: bool | None = None) -> None:
    global _json_chain
    numeric = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(level=numeric, format="%(message)s")
    logging.getLogger("httpx").setLevel(max(numeric, logging.WARNING))  # control-plane polls are noise
    if console is None:
        console = sys.stderr.isatty()
    renderer: structlog.typing.Processor
    binary = None if console else getattr(sys.stderr, "buffer", None)
    if console:
        # `format_exc_info` (before the redactor) has already made any traceback redacted text; the
        # formatter is pinned anyway to one that never prints frames' local variables (headers, keys).
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    else:
        renderer = JsonLineRenderer(as_bytes=binary is not None)
    structlog.configure(
        processors=[
            merge_contextvars,
            structlog.processors.add_log_level,
            UtcTimestamper(),
            format_exc_info,
            SecretRedactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # JSON: the line and its newline in one write to stderr's binary stream.
        logger_factory=structlog.BytesLoggerFactory(binary) if binary is not None
        else structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    _json_chain = None if console else _JsonChain(numeric, structlog.get_config())
