"""The on-device model catalog (`config/edge_models.yaml`, the UpCoach format): what the mobile app may
download for each platform and format, and which model to use by default per platform and on devices
with little memory.

The file is checked strictly (unknown fields, unknown platforms, non-http(s) URLs, defaults naming
unknown models or models the platform cannot run are refused, each with its path) and then served as
it is written: `GET /api/edge-models` returns the file's own content as JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from gateway.coaching.yaml_files import convert_strict, each_value, parse_yaml, read_yaml
from routing.catalog import CatalogError

Platform = Literal["ios", "android"]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class EdgeFormat(_Strict, frozen=True, kw_only=True):
    """One downloadable file of a model (`onnx`, `coreml`, `tflite`, ...)."""

    url: str
    size_mb: Annotated[float, msgspec.Meta(gt=0)]
    quantization: str | None = None
    sha256: str | None = None


class EdgeModel(_Strict, frozen=True, kw_only=True):
    id: str
    name: str
    description: str = ""
    platforms: tuple[Platform, ...]
    formats: dict[str, EdgeFormat]
    capabilities: tuple[str, ...] = ()
    max_context: Annotated[int, msgspec.Meta(ge=1)]
    min_device_ram_gb: Annotated[float, msgspec.Meta(ge=0)] = 0


class EdgeCatalog(_Strict, frozen=True, kw_only=True):
    edge_models: tuple[EdgeModel, ...] = ()
    defaults: dict[str, str] = {}
    """`ios`, `android`: the default model per platform; `low_memory`: for devices short of RAM."""

    def model(self, model_id: str) -> EdgeModel | None:
        return next((m for m in self.edge_models if m.id == model_id), None)


class EdgeModels(msgspec.Struct, frozen=True):
    """A checked edge catalog and the file's own content (what clients receive)."""

    catalog: EdgeCatalog
    document: dict[str, Any]


EMPTY_EDGE_MODELS = EdgeModels(EdgeCatalog(), {"edge_models": [], "defaults": {}})


def check_edge_catalog(catalog: EdgeCatalog) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for i, model in enumerate(catalog.edge_models):
        where = f"$.edge_models[{i}]"
        if model.id in seen:
            problems.append(f"{where}.id: the id {model.id!r} appears more than once")
        seen.add(model.id)
        if not model.platforms:
            problems.append(f"{where}.platforms: name at least one platform (ios, android)")
        if not model.formats:
            problems.append(f"{where}.formats: name at least one downloadable format")
        for name, fmt in model.formats.items():
            url = urlsplit(fmt.url)
            if url.scheme not in ("http", "https") or not url.netloc:
                problems.append(f"{where}.formats.{name}.url: {fmt.url!r} is not an absolute http(s) URL")
    for name, model_id in catalog.defaults.items():
        default = catalog.model(model_id)
        if default is None:
            problems.append(f"$.defaults.{name}: unknown edge model {model_id!r} (not in $.edge_models)")
        elif name in ("ios", "android") and name not in default.platforms:
            problems.append(f"$.defaults.{name}: the model {model_id!r} does not run on {name}")
    return problems


def parse_edge_models(text: str, source: str = "<string>") -> EdgeModels:
    return _checked(parse_yaml(text, source), source)


def load_edge_models(path: str | Path) -> EdgeModels:
    return _checked(read_yaml(path), str(path))


def _checked(data: Any, source: str) -> EdgeModels:
    models = data.get("edge_models") if isinstance(data, dict) else None
    for i, model in enumerate(models if isinstance(models, list) else ()):
        for name, value in each_value(model, "formats"):
            convert_strict(value, EdgeFormat, source, at=f"$.edge_models[{i}].formats.{name}")
    catalog = convert_strict(data, EdgeCatalog, source)
    problems = check_edge_catalog(catalog)
    if problems:
        raise CatalogError(source, problems)
    return EdgeModels(catalog, data)
