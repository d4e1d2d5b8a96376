"""Which surface answers which path: the table the HTTP layer builds its inference routes from."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from gateway.surfaces.anthropic_messages import ANTHROPIC_MESSAGES
from gateway.surfaces.base import Surface
from gateway.surfaces.chat_completions import CHAT_COMPLETIONS
from gateway.surfaces.completions import COMPLETIONS
from gateway.surfaces.embeddings import EMBEDDINGS
from gateway.surfaces.passthrough import DETOKENIZE, RERANK, SCORE, TOKENIZE

BUILTIN_SURFACES: tuple[Surface, ...] = (CHAT_COMPLETIONS, COMPLETIONS, EMBEDDINGS, ANTHROPIC_MESSAGES, RERANK, SCORE,
                                         TOKENIZE, DETOKENIZE)
"""Every surface the gateway serves; a new surface is added here."""


class SurfaceRegistry:
    """The surfaces served, in order, and by path (a path belongs to one surface)."""

    def __init__(self, surfaces: Iterable[Surface] = BUILTIN_SURFACES) -> None:
        self._surfaces = tuple(surfaces)
        by_path: dict[str, Surface] = {}
        for surface in self._surfaces:
            for path in surface.paths:
                if path in by_path:
                    raise ValueError(f"{path} is served by both {by_path[path].name} and {surface.name}")
                by_path[path] = surface
        self.by_path: Mapping[str, Surface] = MappingProxyType(by_path)
        """Path to surface: what the hot path looks a request's path up in (one dict lookup)."""

    def __iter__(self) -> Iterator[Surface]:
        return iter(self._surfaces)
