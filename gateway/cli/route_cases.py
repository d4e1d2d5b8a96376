"""`llm-gateway routes test FILE`: keep the routing rules under test in CI.

The file lists requests and the model each must be routed to:

    catalog: config/models.yaml        # optional: default $GATEWAY_CONFIG or config/models.yaml
    cases:
      - name: quick tips go to the small model     # optional
        request: {messages: [{role: user, content: "Give me a quick tip"}]}
        expect: llama3.2:3b
        route: routes[0]                           # optional: also check why
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import yaml

from gateway.errors import GatewayError
from gateway.inference.model_selection import choose_model
from gateway.surfaces import CHAT_COMPLETIONS
from gateway.workers.active_catalog import ActiveCatalog
from routing.catalog import CatalogError, load_catalog


class RouteCase(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    request: dict[str, Any]
    expect: str
    name: str | None = None
    route: str | None = None


class RouteCases(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    cases: tuple[RouteCase, ...]
    catalog: str | None = None


def run_route_cases(path: str, default_catalog: str, *, override: bool = False) -> tuple[bool, list[str]]:
    """Run every case; return whether all passed and one report line per case (or per problem)."""
    try:
        cases = msgspec.convert(yaml.safe_load(Path(path).read_text(encoding="utf-8")), RouteCases)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        return False, [f"{path}: cannot read the cases ({exc})"]
    catalog_path = default_catalog if override or not cases.catalog else cases.catalog
    if cases.catalog and not override and not Path(catalog_path).is_absolute():
        catalog_path = str(Path(path).parent / catalog_path)
    try:
        runtime = ActiveCatalog.build(load_catalog(catalog_path), {})
    except CatalogError as exc:
        return False, str(exc).splitlines()
    lines, ok = [], True
    for i, case in enumerate(cases.cases):
        label = case.name or f"cases[{i}]"
        try:
            request = CHAT_COMPLETIONS.decode(msgspec.json.encode(case.request))
            choice = choose_model(runtime, request)
            got, why = choice.model, choice.route
        except GatewayError as exc:
            got, why = f"error {exc.status_code()}", exc.message
        passed = got == case.expect and (case.route is None or case.route == why)
        ok = ok and passed
        expected = case.expect + (f" via {case.route}" if case.route else "")
        lines.append(f"{'PASS' if passed else 'FAIL'} {label}: {got} via {why}"
                     + ("" if passed else f" (expected {expected})"))
    lines.append(f"{sum(line.startswith('PASS') for line in lines)} passed, "
                 f"{sum(line.startswith('FAIL') for line in lines)} failed")
    return ok, lines
