"""Whether a request may be answered from the cache, and under which key.

Cacheable: deterministic requests by default (as the request's API surface judges: for OpenAI's,
temperature 0 or a `seed`); a routing rule or model can opt in (`cache: {enabled: true}`: e.g. daily
tips) or out. The key is a SHA-256 of the scope (the caller's tenant — its key's team, else the key —
unless the rule shares entries), the catalog model, the surface and the fields of the body that can
change the answer (the surface's `cache_fields`: fields that only change the delivery are left out, so a
stored answer serves streaming and non-streaming requests alike), in a canonical order. The key never
leaves the gateway.

The cache sits below `gateway.surfaces` and does not import it: what it needs of a surface is the
`KeyedSurface` protocol below, which every surface satisfies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from routing.catalog import CacheSpec

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


class KeyedSurface(Protocol):
    """What the cache asks of a request's surface (`gateway.surfaces.Surface`)."""

    @property
    def name(self) -> str: ...

    def is_deterministic(self, body: dict[str, Any]) -> bool: ...

    def cache_fields(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The body's fields that can change the answer, or None: never cached."""
        ...


def cache_directives(header: str | None) -> set[str]:
    if not header:
        return set()
    return {part.strip().lower().split("=", 1)[0] for part in header.split(",") if part.strip()}


def plan_for(surface: KeyedSurface, body: dict[str, Any], model: str, spec: CacheSpec | None, tenant: str, *,
             default_ttl: float, cache_control: str | None, may_bypass: bool) -> CachePlan | None:
    """The cache plan for this request of `surface`, or None when it is not cacheable."""
    enabled = spec.enabled if spec is not None else None
    if enabled is False or (enabled is None and not surface.is_deterministic(body)):
        return None
    output_fields = surface.cache_fields(body)
    if output_fields is None:
        return None
    directives = cache_directives(cache_control) if may_bypass else set()
    scope = "shared" if spec is not None and spec.scope == "shared" else f"tenant:{tenant}"
    digest = hashlib.sha256()
    for part in (scope, model, surface.name):
        digest.update(part.encode())
        digest.update(b"\x00")
    digest.update(_encode_sorted(output_fields))
    ttl = spec.ttl if spec is not None and spec.ttl is not None else default_ttl
    return CachePlan(key=digest.hexdigest(), ttl=ttl, store_truncated=bool(spec and spec.store_truncated),
                     lookup="no-cache" not in directives, store="no-store" not in directives)
