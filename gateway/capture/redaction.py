"""PII redaction for captured interactions, applied before anything is written.

Secrets never reach captures' neighbour, the log (`gateway.observability.logs`); this is about personal
data in prompts and answers: e-mail addresses and phone numbers by default, plus the operator's own
patterns (`GATEWAY_CAPTURE_REDACT`: one RE2 regex, or a JSON array of them).

The default patterns run on Python's `re` and are written so that no input makes them slow (each
match attempt starts only at the beginning of a run of candidate characters, and repetitions are
bounded). Configured patterns run on RE2 (linear time, as routing patterns do), so an operator's
pattern cannot make the writer slow either.

Every string value of the request and the answer is scrubbed, except structural fields (`role`,
`model`, `id`, `object`, `type`, `finish_reason`, ...), whose values are never personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway.operator_patterns import compile_configured

EMAIL = "[email]"
PHONE = "[phone]"
REDACTED = "[redacted]"

# Local part, `@`, then at least two dot-separated labels. The lookbehind makes an attempt start only at
# the beginning of a run of local-part characters, so a long run without `@` is scanned once.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})+")
# An optional +country code, an optional (area code), then 2 to 5 groups of digits with optional single
# separators. Candidates are then checked: 7 to 15 digits (E.164), and not a date.
_PHONE = re.compile(r"(?<![\w+.\-/])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?"
                    r"\d{2,4}(?:[ .\-]?\d{2,5}){1,4}(?![\w/])")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")

STRUCTURAL_KEYS = frozenset({
    "role", "model", "id", "object", "type", "finish_reason", "tool_call_id", "request_id", "index",
    "system_fingerprint", "response_format", "stop", "tool_choice", "encoding_format", "name",
})
"""Fields whose string values are identifiers or enumerations, left as they are. (`name`: function and
tool names; a message's `name` (the participant) is left too.)"""


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if not 7 <= digits <= 15 or _DATE.fullmatch(text):
        return text
    return PHONE


class Redactor:
    """Replaces e-mail addresses with `[email]`, phone numbers with `[phone]` and matches of the
    configured patterns with `[redacted]`, in every non-structural string of a JSON-like value."""

    def __init__(self, patterns: Iterable[str] = (), *, defaults: bool = True) -> None:
        self._configured = [compile_configured(p) for p in patterns]
        self._defaults = defaults

    def text(self, value: str) -> str:
        for pattern in self._configured:
            value = pattern.sub(REDACTED, value)
        if self._defaults:
            if "@" in value:
                value = _EMAIL.sub(EMAIL, value)
            value = _PHONE.sub(_phone, value)
        return value

    def scrub(self, value: Any) -> Any:
        """A copy of `value` (dicts, lists, strings, numbers) with every non-structural string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: v if k in STRUCTURAL_KEYS and isinstance(v, str) else self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value
