"""Route cases: requests and the model each must be routed to, checked against a catalog in force. The
`llm-gateway routes test` command runs a file of them (`gateway.cli.route_cases`); the console runs them
against the live catalog. The file's shape:

    catalog: config/models.yaml        # optional (the command's; the console tests the live catalog)
    cases:
      - name: quick tips go to the small model     # optional
        request: {messages: [{role: user, content: "Give me a quick tip"}]}
        expect: llama3.2:3b
        route: routes[0]                           # optional: also check why
"""

from __future__ import annotations

from typing import Any

import msgspec
import yaml

from gateway.errors import GatewayError
from gateway.inference.model_selection import choose_model
from gateway.surfaces import CHAT_COMPLETIONS
from gateway.workers.active_catalog import ActiveCatalog

CASES_FILE = "route_cases.yaml"
"""The name the console looks for beside the catalog file."""


class RouteCase(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    request: dict[str, Any]
    expect: str
    name: str | None = None
    route: str | None = None


class RouteCases(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    cases: tuple[RouteCase, ...]
    catalog: str | None = None


def parse_route_cases(text: str) -> RouteCases:
    """The cases of a YAML text; ValueError saying what is wrong."""
    try:
        return msgspec.convert(yaml.safe_load(text), RouteCases)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise ValueError(f"cannot read the cases ({exc})") from None


def check_route_cases(runtime: ActiveCatalog, cases: RouteCases) -> tuple[bool, list[str]]:
    """Run every case; whether all passed, and one `PASS`/`FAIL` line per case, then the counts."""
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
