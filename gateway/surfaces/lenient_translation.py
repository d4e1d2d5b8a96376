"""A translating surface's request whose translation cannot carry some field: refused only if it must be
translated. A worker that serves the surface natively is sent the request as it came, fields and all;
the pipeline still needs the translation (routing text, prefix affinity, the token estimate), so it
gets the translation of the request without those fields, and the request keeps the first refusal
(`Untranslatable`, a 400 naming the field) for the forwarder, which raises it when no native worker
serves the model.

Without a field means: without the list element the field's path runs through last (a content block, an
input item, a tool), else without the top-level field (`reasoning` for `reasoning.effort`). A request
whose stripped translation fails otherwise gets the first refusal at once.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.errors import InvalidRequest, Untranslatable

Body = dict[str, Any]
T = TypeVar("T")
_MAX_LEFT_OUT = 16
"""Refusals one request may have before it is refused anyway (each costs a translation attempt)."""
_SEGMENT = re.compile(r"[^.\[\]]+")


def translated_leniently(translate: Callable[[Body], T], body: Body) -> tuple[T, Untranslatable | None]:
    """`translate(body)`, and None; when it cannot carry a field, the translation of `body` without the
    fields it cannot carry (a copy: `body` is left as it is), and the first refusal."""
    try:
        return translate(body), None
    except Untranslatable as refused:
        first = refused
    stripped = copy.deepcopy(body)
    at: str | None = first.param
    for _ in range(_MAX_LEFT_OUT):
        if at is None or not _leave_out(stripped, at):
            raise first
        try:
            return translate(stripped), first
        except Untranslatable as another:
            at = another.param
        except InvalidRequest:
            raise first from None
    raise first


def _leave_out(body: Body, path: str) -> bool:
    """Remove from `body` what the field at `path` (`input[2].content[0].type`, `messages.0.content.1.x`)
    belongs to; False when the path leads nowhere."""
    segments = _SEGMENT.findall(path)
    last_index = max((i for i, segment in enumerate(segments) if segment.isdigit()), default=None)
    if last_index is None:
        return body.pop(segments[0], None) is not None if segments else False
    container: Any = body
    try:
        for segment in segments[:last_index]:
            container = container[int(segment)] if isinstance(container, list) else container[segment]
        if not isinstance(container, list):
            return False
        del container[int(segments[last_index])]
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    return True
