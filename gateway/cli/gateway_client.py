"""What the operator's commands (`status`, `chat`, `batch`) share to talk to a running gateway over
HTTP: the connection flags, the base URL and keys they resolve to, and the error text of a refusal.

The gateway is `--url` (default `$GATEWAY_URL`, else `http://127.0.0.1:$GATEWAY_PORT`, port 3100); the
key is `--key` (default `$LLM_API_KEY`), the admin key `--admin-key` (default `$GATEWAY_ADMIN_KEY`).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import httpx

DEFAULT_TIMEOUT = 120.0
CHAT_COMPLETIONS = "/v1/chat/completions"


def add_connection_arguments(parser: argparse.ArgumentParser, *, admin: bool = False) -> None:
    """`--url`, `--key`, `--timeout` (and `--admin-key` for commands that read the admin API)."""
    parser.add_argument("--url", help="the gateway (default: $GATEWAY_URL or http://127.0.0.1:$GATEWAY_PORT)")
    parser.add_argument("--key", help="an API key (default: $LLM_API_KEY)")
    if admin:
        parser.add_argument("--admin-key", help="an admin key, for the workers (default: $GATEWAY_ADMIN_KEY)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per request (default: {DEFAULT_TIMEOUT:g})")


def gateway_url(args: argparse.Namespace) -> str:
    """The gateway's base URL, without a trailing slash."""
    url = args.url or os.environ.get("GATEWAY_URL") or f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '3100')}"
    return str(url).rstrip("/")


def api_key(args: argparse.Namespace) -> str | None:
    key: str | None = args.key or os.environ.get("LLM_API_KEY")
    return key


def admin_key(args: argparse.Namespace) -> str | None:
    key: str | None = args.admin_key or os.environ.get("GATEWAY_ADMIN_KEY")
    return key


def bearer(key: str | None) -> dict[str, str]:
    """The Authorization header for `key`; none without a key (the gateway may run without auth)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def error_message(response: httpx.Response) -> str:
    """What the gateway said in refusing: its OpenAI error message, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"])
    return json.dumps(body)[:300]


def reply_content(answer: Any) -> Any:
    """The `content` of a whole (not streamed) chat completion's first choice, as the gateway sent it."""
    message = (answer.get("choices") or [{}])[0].get("message") or {}
    return message.get("content")
