"""`llm-gateway routes test FILE`: keep the routing rules under test in CI. The file's shape and the
checks are `gateway.inference.route_cases` (the console runs the same checks on the live catalog)."""

from __future__ import annotations

from pathlib import Path

from gateway.inference.route_cases import check_route_cases, parse_route_cases
from gateway.workers.active_catalog import ActiveCatalog
from routing.catalog import CatalogError, load_catalog


def run_route_cases(path: str, default_catalog: str, *, override: bool = False) -> tuple[bool, list[str]]:
    """Run every case; return whether all passed and one report line per case (or per problem)."""
    try:
        cases = parse_route_cases(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        return False, [f"{path}: cannot read the cases ({exc})"]
    except ValueError as exc:
        return False, [f"{path}: {exc}"]
    catalog_path = default_catalog if override or not cases.catalog else cases.catalog
    if cases.catalog and not override and not Path(catalog_path).is_absolute():
        catalog_path = str(Path(path).parent / catalog_path)
    try:
        runtime = ActiveCatalog.build(load_catalog(catalog_path), {})
    except CatalogError as exc:
        return False, str(exc).splitlines()
    return check_route_cases(runtime, cases)
