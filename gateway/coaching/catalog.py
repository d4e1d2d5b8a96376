"""The coaching catalog (`config/coaching.yaml`): the context types of `/api/coaching/chat` (each a system
prompt, generation defaults, a history budget, and optionally the server model and the on-device
model that serve it), how long conversation sessions live, and the advice `/api/inference-config`
gives the mobile app for its hybrid (server / on-device) modes.

Decoded strictly like the model catalog: unknown fields, a context type naming a model the model
catalog does not have or an edge model `config/edge_models.yaml` does not list, stop the gateway at
start with the file, the path of the field and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from gateway.coaching.edge_models import EdgeCatalog
from gateway.coaching.yaml_files import convert_strict, each_value, parse_yaml, read_yaml
from routing.catalog import Catalog, CatalogError
from routing.model_choice import ModelChooser, UnknownModel

InferenceMode = Literal["serverOnly", "onDeviceOnly", "onDevicePreferred", "serverPreferred", "auto"]
INFERENCE_MODES: tuple[InferenceMode, ...] = ("serverOnly", "onDeviceOnly", "onDevicePreferred",
                                              "serverPreferred", "auto")
CONTEXT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
Tokens = Annotated[int, msgspec.Meta(ge=0)]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Defaults(_Strict, frozen=True, kw_only=True):
    """What a context type does not set itself."""

    max_tokens: PositiveInt = 512
    temperature: Temperature = 0.7
    history_tokens: Tokens = 1500
    """Tokens of conversation (past turns and the new messages, about four characters a token) sent
    with each turn of a session; the oldest turns go first, the system prompt always stays."""


class ContextType(_Strict, frozen=True, kw_only=True):
    system_prompt: str
    description: str = ""
    model: str | None = None
    """The catalog model (or alias) that answers; unset: the catalog's routing rules are matched
    against the context type's name, then `routing.default_model`."""
    edge_model: str | None = None
    """The on-device model the app may use for it (an id of edge_models.yaml); unset: server only."""
    max_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    history_tokens: Tokens | None = None


class InferenceAdvice(_Strict, frozen=True, kw_only=True):
    """What `/api/inference-config` tells the app."""

    mode: InferenceMode = "auto"
    on_device_max_prompt_length: Tokens = 280
    """In `auto` mode, prompts up to this many characters may be answered on the device."""


class CoachingCatalog(_Strict, frozen=True, kw_only=True):
    defaults: Defaults = Defaults()
    session_ttl: Annotated[float, msgspec.Meta(gt=0)] = 86400.0
    """Seconds a conversation session lives after its last turn."""
    inference: InferenceAdvice = InferenceAdvice()
    context_types: dict[str, ContextType] = {}

    def context(self, name: str) -> CoachingContext | None:
        spec = self.context_types.get(name)
        if spec is None:
            return None
        d = self.defaults
        return CoachingContext(
            name=name, system_prompt=spec.system_prompt.strip(), model=spec.model, edge_model=spec.edge_model,
            max_tokens=spec.max_tokens if spec.max_tokens is not None else d.max_tokens,
            temperature=spec.temperature if spec.temperature is not None else d.temperature,
            history_tokens=spec.history_tokens if spec.history_tokens is not None else d.history_tokens)

    @property
    def names(self) -> list[str]:
        return sorted(self.context_types)


@dataclass(frozen=True, slots=True)
class CoachingContext:
    """One context type with the defaults filled in."""

    name: str
    system_prompt: str
    model: str | None
    edge_model: str | None
    max_tokens: int
    temperature: float
    history_tokens: int


def check_coaching(coaching: CoachingCatalog) -> list[str]:
    """Every problem of a decoded coaching catalog on its own, as `path: reason`."""
    problems: list[str] = []
    for name, spec in coaching.context_types.items():
        where = f"$.context_types.{name}"
        if not CONTEXT_NAME.match(name):
            problems.append(f"{where}: a context type is 1-40 lower-case letters, digits and _, "
                            "starting with a letter")
        if not spec.system_prompt.strip():
            problems.append(f"{where}.system_prompt: must not be empty")
    return problems


def reference_problems(coaching: CoachingCatalog, models: Catalog, edge: EdgeCatalog | None) -> list[str]:
    """What the coaching catalog names that the model catalog (or the edge catalog, if given) lacks."""
    problems: list[str] = []
    known = {m.name for m in models.models} | {a for m in models.models for a in m.aliases}
    for name, spec in coaching.context_types.items():
        where = f"$.context_types.{name}"
        if spec.model is not None and spec.model not in known:
            problems.append(f"{where}.model: unknown model {spec.model!r} (not in the model catalog)")
        elif spec.model is None and models.routing.default_model is None and not _any_rule_matches(models, name):
            problems.append(f"{where}.model: no model, no routing rule matches {name!r}, and the model "
                            "catalog has no default model")
        if spec.edge_model is not None and edge is not None and edge.model(spec.edge_model) is None:
            problems.append(f"{where}.edge_model: unknown edge model {spec.edge_model!r} "
                            "(not in the edge model catalog)")
    return problems


def _any_rule_matches(models: Catalog, name: str) -> bool:
    try:
        ModelChooser(models).by_rules(name)
    except UnknownModel:
        return False
    return True


def parse_coaching(text: str, source: str = "<string>", *, models: Catalog | None = None,
                   edge: EdgeCatalog | None = None) -> CoachingCatalog:
    return _checked(parse_yaml(text, source), source, models, edge)


def load_coaching(path: str | Path, *, models: Catalog | None = None,
                  edge: EdgeCatalog | None = None) -> CoachingCatalog:
    """Read, decode and check a coaching catalog (with `models` and `edge`, what it names in them too);
    raise `CatalogError` with every problem found."""
    return _checked(read_yaml(path), str(path), models, edge)


def _checked(data: Any, source: str, models: Catalog | None, edge: EdgeCatalog | None) -> CoachingCatalog:
    for name, value in each_value(data, "context_types"):
        convert_strict(value, ContextType, source, at=f"$.context_types.{name}")
    coaching = convert_strict(data, CoachingCatalog, source)
    problems = check_coaching(coaching)
    if models is not None:
        problems += reference_problems(coaching, models, edge)
    if problems:
        raise CatalogError(source, problems)
    return coaching
