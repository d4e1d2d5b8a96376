"""Captured interactions for the console to browse: newest first, with their latest rating, filtered.

Reads the capture store's files (`gateway.capture.store`) newest file first and each file from its
end, so a page of recent interactions costs about the recent files, not the whole store; a rating is
always written after its interaction, so reading backwards meets the latest rating first. What is shown
was redacted when it was written (`docs/capture.md`). Blocking file I/O: call it in a thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from gateway.capture.store import capture_files

_decode = msgspec.json.Decoder().decode
_TEXT_CHARS = 2000


@dataclass(frozen=True, slots=True)
class CaptureFilter:
    model: str | None = None
    key_id: str | None = None
    rating: str | None = None
    """`rated`, `unrated`, or a number: rated at least that."""
    limit: int = 50


def _records_backwards(directory: str) -> Iterator[dict[str, Any]]:
    for path in reversed(capture_files(directory)):
        try:
            lines = Path(path).read_bytes().splitlines()
        except FileNotFoundError:
            continue
        for line in reversed(lines):
            try:
                record = _decode(line) if line.strip() else None
            except msgspec.DecodeError:
                continue
            if isinstance(record, dict):
                yield record


def _text(value: Any) -> str:
    """A message's content as text (parts joined), cut for display."""
    if isinstance(value, list):
        value = " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in value)
    text = "" if value is None else str(value)
    return text if len(text) <= _TEXT_CHARS else text[:_TEXT_CHARS] + "…"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _summary(record: dict[str, Any], rating: dict[str, Any] | None) -> dict[str, Any]:
    request = _dict(record.get("request"))
    messages = _list(request.get("messages"))
    prompt = [{"role": str(m.get("role")), "content": _text(m.get("content"))} for m in messages if isinstance(m, dict)]
    if not prompt and "prompt" in request:
        prompt = [{"role": "prompt", "content": _text(request.get("prompt"))}]
    choices = _list(_dict(record.get("response")).get("choices"))
    first = _dict(choices[0]) if choices else {}
    message = _dict(first.get("message"))
    answer = _text(message.get("content") if message else first.get("text"))
    return {field: record.get(field) for field in (
        "request_id", "timestamp", "endpoint", "model", "route", "worker", "key_id", "tenant", "stream",
        "latency_ms", "prompt_tokens", "completion_tokens", "error")} | {
        "prompt": prompt, "answer": answer, "finish_reason": first.get("finish_reason"), "rating": rating}


def _wanted(record: dict[str, Any], rating: dict[str, Any] | None, wanted: CaptureFilter) -> bool:
    if wanted.model and record.get("model") != wanted.model:
        return False
    if wanted.key_id and record.get("key_id") != wanted.key_id:
        return False
    if wanted.rating == "rated":
        return rating is not None
    if wanted.rating == "unrated":
        return rating is None
    if wanted.rating:
        try:
            return rating is not None and rating["rating"] >= int(wanted.rating)
        except ValueError:
            return True
    return True


def browse(directory: str, wanted: CaptureFilter) -> list[dict[str, Any]]:
    """Up to `wanted.limit` interactions, newest first, that pass the filter."""
    ratings: dict[tuple[str, str], dict[str, Any]] = {}
    found: list[dict[str, Any]] = []
    for record in _records_backwards(directory):
        key = (str(record.get("tenant")), str(record.get("request_id")))
        if record.get("type") == "feedback" and isinstance(record.get("rating"), int):
            ratings.setdefault(key, {"rating": record["rating"], "label": record.get("label"),
                                     "comment": record.get("comment")})
        elif record.get("type") == "interaction":
            rating = ratings.get(key)
            if _wanted(record, rating, wanted):
                found.append(_summary(record, rating))
                if len(found) >= wanted.limit:
                    break
    return found
