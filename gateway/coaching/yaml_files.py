"""Reading a YAML configuration file into strict msgspec types, with every problem as `path: reason`
(the same conventions as the model catalog, `routing.catalog`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from routing.catalog import CatalogError

T = TypeVar("T")


def read_yaml(path: str | Path) -> Any:
    """The decoded YAML of `path` (an empty file is `{}`); raises `CatalogError` naming the file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(source, [f"$: cannot read the file ({exc.strerror})"]) from None
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> Any:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(source, [f"$: not valid YAML ({exc})"]) from None
    return {} if data is None else data


def convert_strict(data: Any, type_: type[T], source: str, *, at: str = "$") -> T:
    """`data` (found at path `at`) as `type_`, unknown fields refused; a mismatch raises `CatalogError`
    with its path. msgspec names a dict's values `[...]`: convert those one by one first, with their key
    in `at`, to say which one is wrong."""
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        reason, sep, where = str(exc).rpartition(" - at ")
        problem = f"{at}{where.strip('`')[1:]}: {reason}" if sep else f"{at}: {exc}"
        raise CatalogError(source, [problem]) from None


def each_value(data: Any, key: str) -> list[tuple[str, Any]]:
    """The entries of the mapping `data[key]` (none if either is not a mapping)."""
    values = data.get(key) if isinstance(data, dict) else None
    return [(str(k), v) for k, v in values.items()] if isinstance(values, dict) else []
