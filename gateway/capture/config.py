"""The capture's settings and the opt-in decision: whether a request is captured at all.

Off by default. A request is captured when its key says `metadata.capture: "true"`, or when its
routing rule (else its model) says `capture: true` in the catalog and the key does not say
`metadata.capture: "false"` (a tenant's opt-out wins). Surfaces that are not captured (embeddings: see
`gateway.surfaces`) never ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.authenticator import Caller
from gateway.observability.request_record import RequestRecord
from gateway.settings import Settings
from routing.catalog import Catalog

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
DEFAULT_DIR = "captures"
DEFAULT_FILE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    directory: str = DEFAULT_DIR
    """GATEWAY_CAPTURE_DIR: where the JSONL files go (created at the first capture)."""
    file_bytes: int = DEFAULT_FILE_BYTES
    """GATEWAY_CAPTURE_FILE_BYTES: a file is closed and a new one started at this size."""
    max_bytes: int = DEFAULT_MAX_BYTES
    """GATEWAY_CAPTURE_MAX_BYTES: the oldest files are deleted to keep the directory under this."""
    redact: tuple[str, ...] = ()
    """GATEWAY_CAPTURE_REDACT: extra RE2 patterns replaced by `[redacted]` (emails and phone numbers
    are always redacted)."""
    queue_limit: int = 10_000
    """Interactions waiting to be written; more are dropped (and counted)."""
    index_limit: int = 100_000
    """Recently captured request ids remembered for feedback without reading the files."""

    @classmethod
    def from_settings(cls, settings: Settings) -> CaptureConfig:
        """The capture's part of the settings (read and checked from the environment there)."""
        return cls(directory=settings.capture_dir, file_bytes=settings.capture_file_bytes,
                   max_bytes=settings.capture_max_bytes, redact=settings.capture_redact)


def _flag(spec: object) -> bool | None:
    value = getattr(spec, "capture", None)
    return value if isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class CatalogFlags:
    """A catalog's `capture` fields by routing-rule label (`name`, else `routes[i]`) and by model:
    computed once per catalog, so that asking costs a dict lookup."""

    catalog: Catalog
    rules: dict[str, bool]
    models: frozenset[str]

    @classmethod
    def of(cls, catalog: Catalog) -> CatalogFlags:
        rules = {}
        for i, rule in enumerate(catalog.routing.routes):
            flag = _flag(rule)
            if flag is not None:
                rules[rule.name or f"routes[{i}]"] = flag
        return cls(catalog, rules, frozenset(m.name for m in catalog.models if _flag(m) is True))

    def opt_in(self, record: RequestRecord, route: str | None) -> bool:
        flag = self.rules.get(route or "")
        if flag is not None:
            return flag
        return (record.fallback_from or record.model) in self.models


def route_opt_in(catalog: Catalog, record: RequestRecord, route: str | None) -> bool:
    """The catalog's say on capturing a request that `record` describes (once answered): the `capture`
    of the routing rule labelled `route` if it sets one, else the `capture` of the model chosen (before
    any fallback). Reads `capture` fields where the catalog has them (absent: False)."""
    return CatalogFlags.of(catalog).opt_in(record, route)


def key_opt_in(caller: Caller) -> bool | None:
    """The key's own say (`metadata.capture`): True, False, or None when it says nothing."""
    if caller.key is None:
        return None
    raw = caller.key.metadata.get("capture")
    if raw is None:
        return None
    value = raw.strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None
