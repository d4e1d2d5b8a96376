"""Which catalog model serves a request: pure, from the catalog and the request's text.

An explicit `model` the catalog knows (by name or alias) wins; with no `model`, the first
`routing.routes` rule whose pattern matches the text (case-insensitive), else `routing.default_model`.
Patterns run on RE2 (linear time, see `routing.safe_regex`) over at most `MAX_MATCH_CHARS` characters
(the end of the text, where the newest words are), so no input can make matching slow.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.catalog import CacheSpec, Catalog
from routing.safe_regex import Matcher, compile_safe

MAX_MATCH_CHARS = 8192


@dataclass(frozen=True, slots=True)
class ModelChoice:
    model: str
    route: str
    """Why: `explicit`, `alias`, `default`, or the matching rule (its `name`, else `routes[i]`)."""
    fallbacks: tuple[str, ...] = ()
    """Models to try, in order, when no worker of `model` can take the request."""
    cache: CacheSpec | None = None
    """The caching rule for this request: the matching rule's, else the model's."""


class UnknownModel(LookupError):
    def __init__(self, requested: str | None) -> None:
        super().__init__(requested)
        self.requested = requested


@dataclass(frozen=True, slots=True)
class _Rule:
    label: str
    regex: Matcher
    model: str
    cache: CacheSpec | None


class ModelChooser:
    """Chooses a catalog model by name, alias, rule or default."""

    def __init__(self, catalog: Catalog) -> None:
        self._fallbacks = {m.name: m.fallbacks for m in catalog.models}
        self._cache = {m.name: m.cache for m in catalog.models}
        self._aliases = {alias: m.name for m in catalog.models for alias in m.aliases}
        self._default = catalog.routing.default_model
        self.match_on = catalog.routing.match_on
        self._rules = tuple(
            _Rule(rule.name or f"routes[{i}]", compile_safe(rule.pattern), rule.model, rule.cache)
            for i, rule in enumerate(catalog.routing.routes)
        )

    def choose(self, requested: str | None, text: str) -> ModelChoice:
        if requested:
            if requested in self._fallbacks:
                return self._choice(requested, "explicit")
            if requested in self._aliases:
                return self._choice(self._aliases[requested], "alias")
            raise UnknownModel(requested)
        return self.by_rules(text)

    def by_rules(self, text: str) -> ModelChoice:
        window = text[-MAX_MATCH_CHARS:]
        for rule in self._rules:
            if rule.regex.search(window):
                return self._choice(rule.model, rule.label, rule.cache)
        if self._default is None:
            raise UnknownModel(None)
        return self._choice(self._default, "default")

    def _choice(self, model: str, route: str, cache: CacheSpec | None = None) -> ModelChoice:
        return ModelChoice(model, route, self._fallbacks.get(model, ()), cache or self._cache.get(model))
