"""Regexes an operator configures (`GATEWAY_CAPTURE_REDACT`): their environment form, and compiling them
on RE2 (linear time), so no configured pattern can make the gateway slow. Settings check them at load;
capture's redaction compiles them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import re2


class CompiledPattern(Protocol):
    def sub(self, repl: Callable[[Any], str] | str, string: str) -> str: ...


def parse_patterns(raw: str) -> tuple[str, ...]:
    """`GATEWAY_CAPTURE_REDACT`: empty, one regex, or a JSON array of regexes (regexes may hold commas,
    so there is no comma-separated form). Raises ValueError naming what is wrong."""
    raw = raw.strip()
    if not raw:
        return ()
    patterns: list[str]
    if raw.startswith("["):
        try:
            decoded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a valid JSON array of regexes ({exc.msg})") from None
        if not isinstance(decoded, list) or not all(isinstance(p, str) and p for p in decoded):
            raise ValueError("expected a JSON array of non-empty strings")
        patterns = decoded
    else:
        patterns = [raw]
    for pattern in patterns:
        compile_configured(pattern)
    return tuple(patterns)


def compile_configured(pattern: str) -> CompiledPattern:
    """An operator's pattern on RE2 (linear time); ValueError with RE2's reason if it refuses it."""
    options = re2.Options()
    options.log_errors = False
    try:
        compiled: CompiledPattern = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) \
            else str(exc)
        raise ValueError(f"{pattern!r}: {reason} (redaction patterns run on RE2: no lookarounds or "
                         "backreferences)") from None
    return compiled
