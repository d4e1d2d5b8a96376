"""`llm-gateway status|chat|batch`: an operator's client for a running gateway, over HTTP (httpx).

- `status`: health (`/health`), readiness (`/readyz`), models (`/v1/models`) and workers
  (`/admin/workers`, with an admin key); exit 0 when ready, 1 when not, 2 when unreachable.
- `chat MODEL PROMPT`: one chat completion, streamed to the terminal as it is generated.
- `batch FILE`: the prompts of a JSONL or text file, `-c` at a time, with a progress bar on a terminal
  and a summary: count, errors, latency p50/p90/p99, tokens per second.

The gateway is `--url` (default `$GATEWAY_URL`, else `http://127.0.0.1:$GATEWAY_PORT`, port 3100); the
key is `--key` (default `$LLM_API_KEY`), the admin key `--admin-key` (default `$GATEWAY_ADMIN_KEY`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from gateway.upstream.stream_folding import StreamGatherer

DEFAULT_TIMEOUT = 120.0


def _add_connection(parser: argparse.ArgumentParser, *, admin: bool = False) -> None:
    parser.add_argument("--url", help="the gateway (default: $GATEWAY_URL or http://127.0.0.1:$GATEWAY_PORT)")
    parser.add_argument("--key", help="an API key (default: $LLM_API_KEY)")
    if admin:
        parser.add_argument("--admin-key", help="an admin key, for the workers (default: $GATEWAY_ADMIN_KEY)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per request (default: {DEFAULT_TIMEOUT:g})")


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    _add_connection(parser, admin=True)
    parser.add_argument("--json", action="store_true", help="print the gateway's answers as one JSON object")


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a catalog model or alias (`-`: none, the routing rules choose)")
    parser.add_argument("prompt", nargs="?", default="-", help="the user message (default, or `-`: standard input)")
    parser.add_argument("--system", help="a system message")
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="then print the request id, model, worker, tokens and time on standard error")
    _add_connection(parser)


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
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
    _add_connection(parser)


def run(args: argparse.Namespace) -> int:
    """Dispatch on `args.command` (`status`, `chat` or `batch`)."""
    command = args.command
    if command == "status":
        return status(args)
    if command == "chat":
        return chat(args)
    if command == "batch":
        return batch(args)
    raise ValueError(f"not an operator command: {command!r}")


def gateway_url(args: argparse.Namespace) -> str:
    url = args.url or os.environ.get("GATEWAY_URL") or f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '3100')}"
    return str(url).rstrip("/")


def _bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"])
    return json.dumps(body)[:300]


# status ---------------------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    url = gateway_url(args)
    key = args.key or os.environ.get("LLM_API_KEY")
    admin_key = args.admin_key or os.environ.get("GATEWAY_ADMIN_KEY")
    answers: dict[str, Any] = {"url": url}
    try:
        with httpx.Client(base_url=url, timeout=args.timeout) as client:
            health = client.get("/health")
            ready = client.get("/readyz")
            models = client.get("/v1/models", headers=_bearer(key or admin_key))
            workers = client.get("/admin/workers", headers=_bearer(admin_key or key))
    except httpx.HTTPError as exc:
        print(f"llm-gateway status: cannot reach {url} ({exc})", file=sys.stderr)
        return 2
    for name, response in (("health", health), ("ready", ready), ("models", models), ("workers", workers)):
        try:
            answers[name] = {"status": response.status_code, "body": response.json()}
        except ValueError:
            answers[name] = {"status": response.status_code, "body": response.text}
    is_ready = ready.status_code == 200
    if args.json:
        print(json.dumps(answers, indent=2))
        return 0 if is_ready else 1
    out = sys.stdout
    health_body = answers["health"]["body"] if isinstance(answers["health"]["body"], dict) else {}
    services = health_body.get("services") or {}
    print(f"gateway {url}: {health_body.get('status', health.status_code)}, "
          f"{'ready' if is_ready else 'NOT READY'}", file=out)
    ready_body = answers["ready"]["body"] if isinstance(answers["ready"]["body"], dict) else {}
    for problem in ready_body.get("problems") or ():
        print(f"  problem: {problem}", file=out)
    if services:
        print("services: " + ", ".join(f"{name} {state}" for name, state in sorted(services.items())), file=out)
    if models.status_code == 200:
        cards = [str(card.get("id")) for card in models.json().get("data") or () if isinstance(card, dict)]
        print(f"models ({len(cards)}): {', '.join(cards) or '-'}", file=out)
    else:
        print(f"models: {models.status_code} {_error_message(models)}", file=out)
    if workers.status_code == 200:
        rows = [w for w in workers.json().get("workers") or () if isinstance(w, dict)]
        print(f"workers ({len(rows)}):", file=out)
        for row in rows:
            print("  " + _worker_line(row), file=out)
    elif workers.status_code in (401, 403):
        print("workers: an admin key is needed (--admin-key or $GATEWAY_ADMIN_KEY)", file=out)
    else:
        print(f"workers: {workers.status_code} {_error_message(workers)}", file=out)
    return 0 if is_ready else 1


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


# chat -----------------------------------------------------------------------------------------------


def chat(args: argparse.Namespace) -> int:
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
    url = gateway_url(args)
    started = time.perf_counter()
    out = sys.stdout
    usage: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=url, timeout=args.timeout,
                          headers=_bearer(args.key or os.environ.get("LLM_API_KEY"))) as client:
            if not body["stream"]:
                response = client.post("/v1/chat/completions", json=body)
                if response.status_code != 200:
                    print(f"llm-gateway chat: {response.status_code} {_error_message(response)}", file=sys.stderr)
                    return 1
                answer = response.json()
                message = (answer.get("choices") or [{}])[0].get("message") or {}
                out.write((message.get("content") or "") + "\n")
                usage = answer.get("usage") or {}
                headers = response.headers
            else:
                with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        response.read()
                        print(f"llm-gateway chat: {response.status_code} {_error_message(response)}",
                              file=sys.stderr)
                        return 1
                    headers = response.headers
                    gathered = StreamGatherer("chat/completions")
                    for data in response.iter_bytes():
                        if text := gathered.feed(data):
                            out.write(text)
                            out.flush()
                        if gathered.error is not None:
                            out.write("\n")
                            out.flush()
                            print(f"llm-gateway chat: the stream failed: {gathered.error.get('message')}",
                                  file=sys.stderr)
                            return 1
                        if gathered.completed:
                            break
                    usage = gathered.folder.usage or usage
                    out.write("\n")
    except httpx.HTTPError as exc:
        print(f"llm-gateway chat: cannot reach {url} ({exc})", file=sys.stderr)
        return 2
    out.flush()
    if args.verbose:
        elapsed = time.perf_counter() - started
        print(f"request {headers.get('x-request-id', '-')}  model {headers.get('x-gateway-model', '-')}  "
              f"worker {headers.get('x-gateway-worker', '-')}  tokens {usage.get('prompt_tokens', '?')} in, "
              f"{usage.get('completion_tokens', '?')} out  {elapsed:.2f} s", file=sys.stderr)
    return 0


# batch ----------------------------------------------------------------------------------------------


class BatchFileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class BatchItem:
    index: int
    body: dict[str, Any]
    """The request body (without `stream`)."""
    label: str | None = None
    """The item's `id`, if it has one."""


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


@dataclass
class BatchResult:
    index: int
    ok: bool
    latency_s: float
    status: int = 0
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_id: str | None = None
    answer: str | None = None
    error: str | None = None
    label: str | None = None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class BatchSummary:
    count: int
    errors: int
    wall_s: float
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    completion_tokens: int = 0

    def lines(self) -> list[str]:
        out = [f"requests: {self.count}, ok {self.count - self.errors}, errors {self.errors}, "
               f"in {self.wall_s:.2f} s ({self.count / self.wall_s if self.wall_s else 0:.2f} requests/s)"]
        if self.latencies:
            out.append("latency: " + ", ".join(f"p{p} {percentile(self.latencies, p) * 1000:.0f} ms"
                                               for p in (50, 90, 99)))
        if self.ttfts:
            out.append("time to first token: " + ", ".join(f"p{p} {percentile(self.ttfts, p) * 1000:.0f} ms"
                                                          for p in (50, 90, 99)))
        rate = self.completion_tokens / self.wall_s if self.wall_s else 0.0
        out.append(f"tokens: {self.completion_tokens} completion tokens, {rate:.1f} tokens/s")
        return out


class _Progress:
    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.errors = total, 0, 0
        self.stream = stream
        self.enabled = stream.isatty()

    def advance(self, ok: bool) -> None:
        self.done += 1
        self.errors += 0 if ok else 1
        if self.enabled:
            width = 30
            filled = width * self.done // self.total
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
                              + (f"  {self.errors} error(s)" if self.errors else ""))
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


async def _one(client: httpx.AsyncClient, item: BatchItem, stream: bool) -> BatchResult:
    body = {**item.body, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    result = BatchResult(item.index, ok=False, latency_s=0.0, label=item.label)
    try:
        if not stream:
            response = await client.post("/v1/chat/completions", json=body)
            result.status, result.request_id = response.status_code, response.headers.get("x-request-id")
            if response.status_code == 200:
                answer = response.json()
                message = (answer.get("choices") or [{}])[0].get("message") or {}
                result.answer = message.get("content")
                _count(result, answer.get("usage"))
                result.ok = True
            else:
                result.error = f"{response.status_code} {_error_message(response)}"
        else:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                result.status, result.request_id = response.status_code, response.headers.get("x-request-id")
                if response.status_code != 200:
                    await response.aread()
                    result.error = f"{response.status_code} {_error_message(response)}"
                else:
                    await _read_stream(response, result, started)
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.latency_s = time.perf_counter() - started
    return result


async def _read_stream(response: httpx.Response, result: BatchResult, started: float) -> None:
    gathered = StreamGatherer("chat/completions")
    parts: list[str] = []
    async for data in response.aiter_bytes():
        if text := gathered.feed(data):
            if result.ttft_s is None:
                result.ttft_s = time.perf_counter() - started
            parts.append(text)
        if gathered.completed:
            break
    if gathered.error is not None:
        result.error = str(gathered.error.get("message"))
    result.ok = gathered.completed and result.error is None
    _count(result, gathered.folder.usage)
    result.answer = "".join(parts)
    if not result.ok and result.error is None:
        result.error = "the stream ended without [DONE]"


def _count(result: BatchResult, usage: object) -> None:
    if isinstance(usage, dict):
        result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        result.completion_tokens = int(usage.get("completion_tokens") or 0)


async def run_batch(items: Sequence[BatchItem], *, url: str, key: str | None, concurrency: int,
                    request_timeout: float, stream: bool = False, progress: TextIO | None = None
                    ) -> tuple[list[BatchResult], float]:
    """Run `items` against the gateway, `concurrency` at a time; the results in item order and the
    wall-clock seconds it took."""
    bar = _Progress(len(items), progress or sys.stderr)
    pending = iter(items)
    results: list[BatchResult] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=_bearer(key), timeout=request_timeout,
                                 limits=limits) as client:

        async def worker() -> None:
            for item in pending:
                result = await _one(client, item, stream)
                results.append(result)
                bar.advance(result.ok)

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(items))))))
    bar.finish()
    return sorted(results, key=lambda r: r.index), time.perf_counter() - started


def summarize(results: Sequence[BatchResult], wall_s: float) -> BatchSummary:
    ok = [r for r in results if r.ok]
    return BatchSummary(count=len(results), errors=len(results) - len(ok), wall_s=wall_s,
                        latencies=[r.latency_s for r in ok], ttfts=[r.ttft_s for r in ok if r.ttft_s is not None],
                        completion_tokens=sum(r.completion_tokens for r in ok))


def batch(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        print("llm-gateway batch: -c must be at least 1", file=sys.stderr)
        return 2
    try:
        items = read_batch(args.file, args.format)
    except BatchFileError as exc:
        print(f"llm-gateway batch: {exc}", file=sys.stderr)
        return 2
    defaults = {name: value for name, value in (("model", args.model), ("max_tokens", args.max_tokens),
                                                ("temperature", args.temperature)) if value is not None}
    items = [BatchItem(item.index, {**defaults, **item.body}, item.label) for item in items]
    url = gateway_url(args)
    results, wall_s = asyncio.run(run_batch(items, url=url, key=args.key or os.environ.get("LLM_API_KEY"),
                                            concurrency=args.concurrency, request_timeout=args.timeout,
                                            stream=args.stream))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            for r in results:
                handle.write(json.dumps({"index": r.index, "id": r.label, "ok": r.ok, "status": r.status,
                                         "latency_ms": round(r.latency_s * 1000, 3),
                                         "ttft_ms": None if r.ttft_s is None else round(r.ttft_s * 1000, 3),
                                         "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                                         "request_id": r.request_id, "answer": r.answer, "error": r.error}) + "\n")
    summary = summarize(results, wall_s)
    for line in summary.lines():
        print(line)
    failures = [r for r in results if not r.ok]
    for r in failures[:5]:
        print(f"  error: prompt {r.label or r.index + 1}: {r.error}", file=sys.stderr)
    if len(failures) > 5:
        print(f"  ... and {len(failures) - 5} more", file=sys.stderr)
    if failures and len(failures) == len(results) and all(r.status == 0 for r in failures):
        print(f"llm-gateway batch: cannot reach {url}", file=sys.stderr)
        return 2
    return 1 if failures else 0
