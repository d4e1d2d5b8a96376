"""Which catalog model serves a request: pure, from the catalog and the request's text.

An explicit `model` the catalog knows wins; with no `model`, the first `routing.routes` rule whose
pattern matches the text (case-insensitive), else `routing.default_model`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from routing.catalog import Catalog

# Patterns run over at most this many characters of the prompt (bounded work per request).
MAX_MATCH_CHARS = 8192


@dataclass(frozen=True, slots=True)
class ModelChoice:
    model: str
    route: str
    """Why: `explicit`, `default`, or the matching rule (its `name`, else `routes[i]`)."""


class UnknownModel(LookupError):
    def __init__(self, requested: str | None) -> None:
        super().__init__(requested)
        self.requested = requested


@dataclass(frozen=True, slots=True)
class _Rule:
    label: str
    regex: re.Pattern[str]
    model: str


class ModelChooser:
    """Chooses a catalog model by name, rule or default."""

    def __init__(self, catalog: Catalog) -> None:
        self._known = frozenset(m.name for m in catalog.models)
        self._default = catalog.routing.default_model
        self._rules = tuple(
            _Rule(rule.name or f"routes[{i}]", re.compile(rule.pattern, re.IGNORECASE), rule.model)
            for i, rule in enumerate(catalog.routing.routes)
        )

    def choose(self, requested: str | None, text: str) -> ModelChoice:
        if requested:
            if requested in self._known:
                return ModelChoice(requested, "explicit")
            raise UnknownModel(requested)
        window = text[-MAX_MATCH_CHARS:]
        for rule in self._rules:
            if rule.regex.search(window):
                return ModelChoice(rule.model, rule.label)
        if self._default is None:
            raise UnknownModel(None)
        return ModelChoice(self._default, "default")
