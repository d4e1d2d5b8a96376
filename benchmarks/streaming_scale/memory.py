"""Where an open stream's memory goes: the gateway app under uvicorn (httptools, uvloop) in this process,
the pacer as its worker, N streams held open by a client process; the process's RSS and tracemalloc's
traced Python memory are compared before and after the N streams opened.

    python -m benchmarks.streaming_scale.memory [--streams 600] [--frames 12] [--write]

Two runs: one without tracemalloc (RSS per stream as the suite measures it: tracemalloc's own
bookkeeping would inflate RSS), one with it (the Python objects per stream, by where they were
allocated). The difference between the two figures is what Python's allocator keeps around the live
objects (arenas and pools the per-stream objects pin) and native memory tracemalloc does not see.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACER_CHUNKS = 100_000
"""The held streams never end during a run."""


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _hold(port: int, streams: int, prompt_bytes: int) -> None:
    """The client: open `streams` chat streams 2 ms apart and read them until killed."""
    prompt = ("Tell me about streams. " * (prompt_bytes // 23 + 1))[:max(prompt_bytes, 2)]
    body = json.dumps({"model": "chat", "stream": True, "messages": [{"role": "user", "content": prompt}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%b" % (len(body), body))

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        while await reader.read(65536):
            pass

    tasks = []
    for _ in range(streams):
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)


def _catalog(pacer_port: int) -> str:
    return ("models:\n  - name: chat\nrouting:\n  default_model: chat\nworkers:\n  - name: pacer\n    kind: openai\n"
            f"    base_url: http://127.0.0.1:{pacer_port}/v1\n"
            "    models:\n      - {name: chat, upstream_id: bench-upstream}\n")


async def _measure(streams: int, frames: int, settle_s: float, prompt_bytes: int) -> dict[str, object]:
    import uvicorn

    from gateway.app.factory import create_app
    from gateway.settings import load_settings
    from routing.catalog import parse_catalog
    from testkit.loopback import free_port

    pacer_port, port = free_port(), free_port()
    pacer = _popen(["-m", "benchmarks.streaming_scale.pacer", "--port", str(pacer_port), "--chunks", str(PACER_CHUNKS)])
    app = create_app(load_settings({"LOG_LEVEL": "warning"}), parse_catalog(_catalog(pacer_port)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, loop="none", http="httptools",
                                           log_level="warning"))
    serving = asyncio.create_task(server.serve())
    holders = []
    try:
        await asyncio.sleep(2)
        holders.append(_holder(port, 20, prompt_bytes))  # warm: every code path ran, pools and caches filled
        await asyncio.sleep(4)
        gc.collect()
        before, rss_before = (tracemalloc.take_snapshot() if frames else None), _rss()
        holders.append(_holder(port, streams, prompt_bytes))
        await asyncio.sleep(streams * 0.002 + settle_s)
        gc.collect()
        after, rss_after = (tracemalloc.take_snapshot() if frames else None), _rss()
    finally:
        for child in [*holders, pacer]:
            child.kill()
            child.wait()
        server.should_exit = True
        await serving
    result: dict[str, object] = {"streams": streams, "prompt_bytes": prompt_bytes,
                                 "rss_kb_per_stream": (rss_after - rss_before) / streams / 1024}
    if before is not None and after is not None:
        result.update(_traced(before, after, streams))
    return result


def _holder(port: int, streams: int, prompt_bytes: int) -> subprocess.Popen[bytes]:
    return _popen(["-m", "benchmarks.streaming_scale.memory", "--hold", str(port), "--streams", str(streams),
                   "--prompt-bytes", str(prompt_bytes)])


def _traced(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, streams: int) -> dict[str, object]:
    """Traced growth per stream, by the innermost frame in the project (else the library's file)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diffs = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    by_site: dict[str, int] = defaultdict(int)
    for diff in diffs:
        frames = list(diff.traceback)
        ours = [f for f in frames if f"{ROOT}/gateway" in f.filename or f"{ROOT}/routing" in f.filename]
        frame = ours[-1] if ours else frames[-1]
        name = frame.filename.replace(f"{ROOT}/", "").split("site-packages/")[-1]
        by_site[f"{name}:{frame.lineno}"] += diff.size_diff
    top = sorted(by_site.items(), key=lambda item: -item[1])[:20]
    return {"traced_kb_per_stream": sum(d.size_diff for d in diffs) / streams / 1024,
            "top_sites_bytes_per_stream": [(site, round(size / streams)) for site, size in top]}


def _report(untraced: dict[str, object], traced: dict[str, object]) -> str:
    lines = [f"### Memory per open stream ({untraced['streams']} streams, chat, pushed, "
             f"prompts of {untraced['prompt_bytes']} bytes)", "",
             f"- RSS per open stream: {untraced['rss_kb_per_stream']:.1f} KB (no tracemalloc)",
             f"- Python objects per open stream (tracemalloc): {traced['traced_kb_per_stream']:.1f} KB; the rest is "
             "what the allocator keeps around them (pymalloc arenas the long-lived objects pin, freed pieces of the "
             "requests' setup) and native memory", "", "| bytes per stream | allocated at |", "|---:|---|"]
    sites = traced["top_sites_bytes_per_stream"]
    assert isinstance(sites, list)
    lines += [f"| {size} | `{site}` |" for site, size in sites]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming_scale.memory",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=600)
    parser.add_argument("--frames", type=int, default=12, help="tracemalloc frames kept per allocation")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds after the last stream opened")
    parser.add_argument("--prompt-bytes", type=int, default=2, help="each request's prompt text")
    parser.add_argument("--hold", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/streaming-memory-*.md")
    args = parser.parse_args(argv)
    import uvloop

    if args.hold:
        uvloop.run(_hold(args.hold, args.streams, args.prompt_bytes))
        return 0
    untraced = uvloop.run(_measure(args.streams, 0, args.settle, args.prompt_bytes))
    tracemalloc.start(args.frames)
    traced = uvloop.run(_measure(args.streams, args.frames, args.settle, args.prompt_bytes))
    tracemalloc.stop()
    report = _report(untraced, traced)
    print(report)
    if args.write:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        (ROOT / "benchmarks" / "results" / f"streaming-memory-{stamp}.md").write_text(report)
    return 0


def _popen(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
