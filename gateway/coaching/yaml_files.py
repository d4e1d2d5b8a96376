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


def convert_strict(data: Any, type_: type[T], source: str) -> T:
    """`data` as `type_` (unknown fields refused); a mismatch raises `CatalogError` with its path."""
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        reason, sep, where = str(exc).rpartition(" - at ")
        problem = f"{where.strip('`')}: {reason}" if sep else f"$: {exc}"
        raise CatalogError(source, [problem]) from None
