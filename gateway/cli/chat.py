"""`llm-gateway chat MODEL [PROMPT]`: one chat completion sent to a running gateway and its answer
streamed to the terminal as it is generated: the quickest way for an operator to see a model answer
through the gateway (`-v` adds which request, model and worker served it, the tokens and the time)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.cli.gateway_client import (
    CHAT_COMPLETIONS,
    add_connection_arguments,
    api_key,
    bearer,
    error_message,
    gateway_url,
    reply_content,
)
from gateway.upstream.stream_folding import StreamGatherer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a catalog model or alias (`-`: none, the routing rules choose)")
    parser.add_argument("prompt", nargs="?", default="-", help="the user message (default, or `-`: standard input)")
    parser.add_argument("--system", help="a system message")
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="then print the request id, model, worker, tokens and time on standard error")
    add_connection_arguments(parser)


@dataclass(frozen=True, slots=True)
class _Answered:
    """What `-v` reports of an answer printed in full."""

    headers: httpx.Headers
    usage: dict[str, Any]


def run(args: argparse.Namespace) -> int:
    body = _request_body(args)
    url = gateway_url(args)
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=url, timeout=args.timeout, headers=bearer(api_key(args))) as client:
            answered = _print_streamed(client, body) if body["stream"] else _print_whole(client, body)
    except httpx.HTTPError as exc:
        print(f"llm-gateway chat: cannot reach {url} ({exc})", file=sys.stderr)
        return 2
    if answered is None:
        return 1
    sys.stdout.flush()
    if args.verbose:
        _print_details(answered, time.perf_counter() - started)
    return 0


def _request_body(args: argparse.Namespace) -> dict[str, Any]:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": prompt}]
    body: dict[str, Any] = {"messages": messages, "stream": not args.no_stream}
    if args.model != "-":
        body["model"] = args.model
    if args.max_tokens is not None:
        body["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        body["temperature"] = args.temperature
    if body["stream"]:
        body["stream_options"] = {"include_usage": True}
    return body


def _print_whole(client: httpx.Client, body: dict[str, Any]) -> _Answered | None:
    """Wait for the whole answer and print it; None (the refusal told) if the gateway refused."""
    response = client.post(CHAT_COMPLETIONS, json=body)
    if response.status_code != 200:
        _print_refusal(response)
        return None
    answer = response.json()
    sys.stdout.write((reply_content(answer) or "") + "\n")
    return _Answered(response.headers, answer.get("usage") or {})


def _print_streamed(client: httpx.Client, body: dict[str, Any]) -> _Answered | None:
    """Print the answer's text as it comes; None (the failure told) if refused or if the stream failed."""
    with client.stream("POST", CHAT_COMPLETIONS, json=body) as response:
        if response.status_code != 200:
            response.read()
            _print_refusal(response)
            return None
        gathered = StreamGatherer("chat/completions")
        for data in response.iter_bytes():
            if text := gathered.feed(data):
                _show(text)
            if gathered.error is not None:
                _show("\n")
                print(f"llm-gateway chat: the stream failed: {gathered.error.get('message')}", file=sys.stderr)
                return None
            if gathered.completed:
                break
        sys.stdout.write("\n")
        return _Answered(response.headers, gathered.folder.usage or {})


def _show(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _print_refusal(response: httpx.Response) -> None:
    print(f"llm-gateway chat: {response.status_code} {error_message(response)}", file=sys.stderr)


def _print_details(answered: _Answered, elapsed: float) -> None:
    headers, usage = answered.headers, answered.usage
    print(f"request {headers.get('x-request-id', '-')}  model {headers.get('x-gateway-model', '-')}  "
          f"worker {headers.get('x-gateway-worker', '-')}  tokens {usage.get('prompt_tokens', '?')} in, "
          f"{usage.get('completion_tokens', '?')} out  {elapsed:.2f} s", file=sys.stderr)
