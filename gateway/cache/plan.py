"""Whether a request may be answered from the cache, and under which key.

Cacheable: deterministic requests (temperature 0, or a `seed`) by default; a routing rule or model can
opt in (`cache: {enabled: true}`: e.g. daily tips) or out. The key is a SHA-256 of the scope (the
caller's tenant — its key's team, else the key — unless the rule shares entries), the catalog model,
the endpoint and every field of the body that can change the answer, in a canonical order. Fields that
only change the delivery (`stream`, `stream_options`, `user`, `session_id`) are left out, so a stored
answer serves streaming and non-streaming requests alike. The key never leaves the gateway.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from routing.catalog import CacheSpec

_DELIVERY_ONLY = frozenset({"stream", "stream_options", "user", "session_id"})
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


@dataclass(frozen=True, slots=True)
class CachePlan:
    key: str
    ttl: float
    store_truncated: bool
    lookup: bool
    """False with `Cache-Control: no-cache`: go to the worker, then refresh the entry."""
    store: bool
    """False with `Cache-Control: no-store`."""


def is_deterministic(body: dict[str, Any]) -> bool:
    temperature = body.get("temperature")
    return body.get("seed") is not None or (isinstance(temperature, int | float) and temperature == 0)


def cache_directives(header: str | None) -> set[str]:
    if not header:
        return set()
    return {part.strip().lower().split("=", 1)[0] for part in header.split(",") if part.strip()}


def plan_for(body: dict[str, Any], endpoint: str, model: str, spec: CacheSpec | None, tenant: str, *,
             default_ttl: float, cache_control: str | None, may_bypass: bool) -> CachePlan | None:
    """The cache plan for this request, or None when it is not cacheable."""
    enabled = spec.enabled if spec is not None else None
    if enabled is False or (enabled is None and not is_deterministic(body)):
        return None
    if body.get("n") not in (None, 1):
        return None
    directives = cache_directives(cache_control) if may_bypass else set()
    scope = "shared" if spec is not None and spec.scope == "shared" else f"tenant:{tenant}"
    output_fields = {k: v for k, v in body.items() if k not in _DELIVERY_ONLY and k != "model"}
    digest = hashlib.sha256()
    for part in (scope, model, endpoint):
        digest.update(part.encode())
        digest.update(b"\x00")
    digest.update(_encode_sorted(output_fields))
    ttl = spec.ttl if spec is not None and spec.ttl is not None else default_ttl
    return CachePlan(key=digest.hexdigest(), ttl=ttl, store_truncated=bool(spec and spec.store_truncated),
                     lookup="no-cache" not in directives, store="no-store" not in directives)
