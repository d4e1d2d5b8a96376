"""`llm-gateway keys create|list|revoke|hash`: API keys from the command line, through the admin API
of a running gateway (so it works the same with Redis or in-memory stores)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

import httpx

from gateway.auth import hash_secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print its secret (shown once)")
    create.add_argument("--scope", choices=("user", "admin"), default="user")
    create.add_argument("--models", default="*", help="comma-separated globs of models it may use (default: *)")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--concurrency", type=int, help="requests in flight at once")
    create.add_argument("--budget", type=int, help="tokens per budget period")
    create.add_argument("--budget-period", choices=("day", "month"), default="month")
    create.add_argument("--expires-in-days", type=float)
    create.add_argument("--owner")
    create.add_argument("--team", help="the tenant: cache scope and reporting")
    actions.add_parser("list", help="list keys (ids, prefixes, scopes, limits; never secrets)")
    revoke = actions.add_parser("revoke", help="revoke a key by id (effective on every replica within 5 s)")
    revoke.add_argument("key_id")
    hashing = actions.add_parser("hash", help="print the SHA-256 of a secret, for GATEWAY_KEYS_FILE")
    hashing.add_argument("secret", nargs="?", help="the secret (default: read it without echo)")
    for action in (create, actions.choices["list"], revoke):
        action.add_argument("--url", default=None,
                            help="the gateway (default: $GATEWAY_URL or http://127.0.0.1:$GATEWAY_PORT)")
        action.add_argument("--admin-key", default=None, help="an admin key (default: $GATEWAY_ADMIN_KEY)")


def run(args: argparse.Namespace) -> int:
    if args.keys_command == "hash":
        secret = args.secret or getpass.getpass("secret: ")
        print(hash_secret(secret))
        return 0
    url = args.url or os.environ.get("GATEWAY_URL") or f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '3100')}"
    admin_key = args.admin_key or os.environ.get("GATEWAY_ADMIN_KEY")
    headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            if args.keys_command == "create":
                response = client.post("/admin/keys", json=_new_key_body(args))
            elif args.keys_command == "list":
                response = client.get("/admin/keys")
            else:
                response = client.delete(f"/admin/keys/{args.key_id}")
    except httpx.HTTPError as exc:
        print(f"llm-gateway keys: cannot reach {url} ({exc})", file=sys.stderr)
        return 2
    body = response.json()
    if response.status_code >= 400:
        print(f"llm-gateway keys: {response.status_code} {body.get('error', {}).get('message', body)}",
              file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2))
    return 0


def _new_key_body(args: argparse.Namespace) -> dict[str, Any]:
    limits = {name: value for name, value in (
        ("requests_per_minute", args.rpm), ("tokens_per_minute", args.tpm), ("max_concurrent", args.concurrency),
        ("token_budget", args.budget)) if value is not None}
    if args.budget is not None:
        limits["budget_period"] = args.budget_period
    metadata = {name: value for name, value in (("owner", args.owner), ("team", args.team)) if value}
    body: dict[str, Any] = {"scope": args.scope, "models": [m.strip() for m in args.models.split(",") if m.strip()],
                            "limits": limits, "metadata": metadata}
    if args.expires_in_days is not None:
        body["expires_in_days"] = args.expires_in_days
    return body
