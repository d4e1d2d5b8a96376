"""`llm-gateway status`: a running gateway's health (`/health`), readiness (`/readyz`), models
(`/v1/models`) and workers (`/admin/workers`, with an admin key), so an operator sees at a glance
whether it serves and what; exit 0 when ready, 1 when not, 2 when unreachable."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from gateway.cli.gateway_client import add_connection_arguments, admin_key, api_key, bearer, error_message, gateway_url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser, admin=True)
    parser.add_argument("--json", action="store_true", help="print the gateway's answers as one JSON object")


def run(args: argparse.Namespace) -> int:
    url = gateway_url(args)
    try:
        responses = _ask(url, args)
    except httpx.HTTPError as exc:
        print(f"llm-gateway status: cannot reach {url} ({exc})", file=sys.stderr)
        return 2
    answers: dict[str, Any] = {"url": url}
    for name, response in responses.items():
        answers[name] = {"status": response.status_code, "body": _body(response)}
    if args.json:
        print(json.dumps(answers, indent=2))
    else:
        _print_summary(url, responses, answers)
    return 0 if responses["ready"].status_code == 200 else 1


def _ask(url: str, args: argparse.Namespace) -> dict[str, httpx.Response]:
    """The four answers; the models with the user key if given, the workers with the admin key if given."""
    key, admin = api_key(args), admin_key(args)
    with httpx.Client(base_url=url, timeout=args.timeout) as client:
        return {"health": client.get("/health"),
                "ready": client.get("/readyz"),
                "models": client.get("/v1/models", headers=bearer(key or admin)),
                "workers": client.get("/admin/workers", headers=bearer(admin or key))}


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _print_summary(url: str, responses: dict[str, httpx.Response], answers: dict[str, Any]) -> None:
    health_body = answers["health"]["body"] if isinstance(answers["health"]["body"], dict) else {}
    ready_body = answers["ready"]["body"] if isinstance(answers["ready"]["body"], dict) else {}
    is_ready = responses["ready"].status_code == 200
    print(f"gateway {url}: {health_body.get('status', responses['health'].status_code)}, "
          f"{'ready' if is_ready else 'NOT READY'}")
    for problem in ready_body.get("problems") or ():
        print(f"  problem: {problem}")
    services = health_body.get("services") or {}
    if services:
        print("services: " + ", ".join(f"{name} {state}" for name, state in sorted(services.items())))
    _print_models(responses["models"])
    _print_workers(responses["workers"])


def _print_models(models: httpx.Response) -> None:
    if models.status_code == 200:
        cards = [str(card.get("id")) for card in models.json().get("data") or () if isinstance(card, dict)]
        print(f"models ({len(cards)}): {', '.join(cards) or '-'}")
    else:
        print(f"models: {models.status_code} {error_message(models)}")


def _print_workers(workers: httpx.Response) -> None:
    if workers.status_code == 200:
        rows = [w for w in workers.json().get("workers") or () if isinstance(w, dict)]
        print(f"workers ({len(rows)}):")
        for row in rows:
            print("  " + _worker_line(row))
    elif workers.status_code in (401, 403):
        print("workers: an admin key is needed (--admin-key or $GATEWAY_ADMIN_KEY)")
    else:
        print(f"workers: {workers.status_code} {error_message(workers)}")


def _worker_line(row: dict[str, Any]) -> str:
    parts = [str(row.get("name")), str(row.get("kind", "")),
             "healthy" if row.get("healthy") else "UNHEALTHY"]
    if row.get("drained"):
        parts.append("drained")
    if row.get("outlier"):
        parts.append("ejected")
    parts.append(f"in flight {row.get('in_flight', 0)}")
    if row.get("models"):
        parts.append("models " + ", ".join(str(m) for m in row["models"]))
    if row.get("url"):
        parts.append(str(row["url"]))
    return "  ".join(parts)
