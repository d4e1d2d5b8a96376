"""Routing patterns run on RE2, so no pattern and no input can make routing slow.

RE2 (Google's engine, `google-re2`) matches in time linear in the input, without backtracking:
the patterns that make a backtracking engine take exponential time (`(a+)+$`, `(a|aa)*`) or polynomial
time (`.*a.*b`, `[a-z]+ing` over a long prompt) are matched as fast as any other. What RE2 does not
have (lookarounds, backreferences, conditionals) is refused at load with RE2's own reason.
Matching is case-insensitive, as the UpCoach catalog's patterns expect.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2


class Matcher(Protocol):
    def search(self, text: str) -> object | None: ...


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.never_capture = True  # routing only asks "does it match"
    options.log_errors = False  # the reason goes into the catalog error, not onto stderr
    return options


def compile_safe(pattern: str) -> Matcher:
    """Compile a routing pattern for RE2; raise ValueError with the reason when RE2 refuses it."""
    try:
        compiled: Matcher = re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) \
            else str(exc)
        raise ValueError(f"{reason}; routing patterns run on RE2 (linear time), which has no lookarounds, "
                         "backreferences or conditionals") from None
    return compiled


def check_pattern(pattern: str) -> str | None:
    """Why a pattern cannot be used for routing, or None when it can."""
    try:
        compile_safe(pattern)
    except ValueError as exc:
        return str(exc)
    return None
