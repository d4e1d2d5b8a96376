"""`llm-gateway batch FILE`: the prompts of a JSONL or text file run against a running gateway, `-c` at
a time, with a progress bar on a terminal and a summary (count, errors, latency p50/p90/p99, tokens per
second): an operator's load check and bulk run in one. Exit 0 when every prompt got an answer, 1 when
some failed, 2 for a bad file or an unreachable gateway."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.cli.batch_runner import BatchItem, BatchResult, run_batch, summarize
from gateway.cli.gateway_client import add_connection_arguments, api_key, gateway_url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="prompts: JSONL (a string, or an object with `prompt` or `messages` and any "
                        "other request fields, per line) or text (one prompt per non-empty line)")
    parser.add_argument("--model", help="the model for items that name none (default: the routing rules choose)")
    parser.add_argument("-c", "--concurrency", type=int, default=4, help="requests at once (default: 4)")
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--format", choices=("auto", "jsonl", "text"), default="auto",
                        help="auto (default): jsonl for .jsonl/.ndjson/.json files, else text")
    parser.add_argument("--stream", action="store_true", help="stream each answer (and measure time to first token)")
    parser.add_argument("--out", help="write one JSON line of result per prompt to this file")
    add_connection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        print("llm-gateway batch: -c must be at least 1", file=sys.stderr)
        return 2
    try:
        items = _with_defaults(read_batch(args.file, args.format), args)
    except BatchFileError as exc:
        print(f"llm-gateway batch: {exc}", file=sys.stderr)
        return 2
    url = gateway_url(args)
    results, wall_s = asyncio.run(run_batch(items, url=url, key=api_key(args), concurrency=args.concurrency,
                                            request_timeout=args.timeout, stream=args.stream))
    if args.out:
        _write_results(args.out, results)
    for line in summarize(results, wall_s).lines():
        print(line)
    failures = [r for r in results if not r.ok]
    _print_failures(failures)
    if failures and len(failures) == len(results) and all(r.status == 0 for r in failures):
        print(f"llm-gateway batch: cannot reach {url}", file=sys.stderr)
        return 2
    return 1 if failures else 0


class BatchFileError(ValueError):
    pass


def read_batch(path: str, fmt: str = "auto") -> list[BatchItem]:
    """The items of a batch file; BatchFileError names the line at fault."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchFileError(f"cannot read {path} ({exc.strerror})") from None
    if fmt == "auto":
        fmt = "jsonl" if Path(path).suffix.lower() in (".jsonl", ".ndjson", ".json") else "text"
    items: list[BatchItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if fmt == "text":
            items.append(BatchItem(len(items), {"messages": [{"role": "user", "content": line.strip()}]}))
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BatchFileError(f"{path}:{number}: not JSON ({exc.msg})") from None
        items.append(_batch_item(len(items), value, f"{path}:{number}"))
    if not items:
        raise BatchFileError(f"{path}: no prompts")
    return items


def _batch_item(index: int, value: Any, where: str) -> BatchItem:
    if isinstance(value, str):
        return BatchItem(index, {"messages": [{"role": "user", "content": value}]})
    if not isinstance(value, dict):
        raise BatchFileError(f"{where}: expected a string or an object")
    body = {k: v for k, v in value.items() if k not in ("id", "prompt", "stream", "stream_options")}
    has_messages = isinstance(value.get("messages"), list) and bool(value["messages"])
    if not has_messages and isinstance(value.get("prompt"), str):
        body["messages"] = [{"role": "user", "content": value["prompt"]}]
    elif not has_messages:
        raise BatchFileError(f"{where}: needs `prompt` (a string) or `messages` (a non-empty array)")
    label = value.get("id")
    return BatchItem(index, body, None if label is None else str(label))


def _with_defaults(items: Sequence[BatchItem], args: argparse.Namespace) -> list[BatchItem]:
    """The items with `--model`, `--max-tokens` and `--temperature` where an item sets none of its own."""
    defaults = {name: value for name, value in (("model", args.model), ("max_tokens", args.max_tokens),
                                                ("temperature", args.temperature)) if value is not None}
    return [BatchItem(item.index, {**defaults, **item.body}, item.label) for item in items]


def _write_results(path: str, results: Sequence[BatchResult]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for r in results:
            handle.write(json.dumps({"index": r.index, "id": r.label, "ok": r.ok, "status": r.status,
                                     "latency_ms": round(r.latency_s * 1000, 3),
                                     "ttft_ms": None if r.ttft_s is None else round(r.ttft_s * 1000, 3),
                                     "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                                     "request_id": r.request_id, "answer": r.answer, "error": r.error}) + "\n")


def _print_failures(failures: Sequence[BatchResult]) -> None:
    """The first five failures, on standard error (the summary on standard output stays parseable)."""
    for r in failures[:5]:
        print(f"  error: prompt {r.label or r.index + 1}: {r.error}", file=sys.stderr)
    if len(failures) > 5:
        print(f"  ... and {len(failures) - 5} more", file=sys.stderr)
