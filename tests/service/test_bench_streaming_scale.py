"""The streaming-at-scale suite's parts against each other on loopback: the pacer paces every stream's
chunks on its one timer wheel, and a point (client processes counting content chunks by their bytes)
sees every stream whole, at the pace, with the pacer's CPU per chunk measured; a stream is what an
OpenAI client reads as one."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from benchmarks.harness import procs
from benchmarks.load import sse
from benchmarks.streaming_scale import pacer
from benchmarks.streaming_scale.point import Load, run_point
from testkit.loopback import LOOPBACK, free_port

CHUNKS = 5
PACE_S = 0.02


@pytest.fixture
async def pacer_child(tmp_path: Path) -> AsyncIterator[tuple[procs.Child, int]]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "benchmarks.streaming_scale.pacer",
        "--port",
        str(port),
        "--chunks",
        str(CHUNKS),
        "--pace",
        str(PACE_S),
    ]
    child = await procs.start_ready("pacer", argv, tmp_path / "pacer.log", f"http://{LOOPBACK}:{port}/v1/models")
    try:
        yield child, port
    finally:
        await child.stop()


async def _chat(port: int, stream: bool) -> bytes:
    body = {"model": pacer.MODEL, "messages": [], "stream": stream}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        answer = await client.post(f"http://{LOOPBACK}:{port}/v1/chat/completions", json=body)
    return answer.content


async def test_a_paced_stream_is_an_openai_stream_and_a_whole_answer_is_one(
    pacer_child: tuple[procs.Child, int],
) -> None:
    _, port = pacer_child
    payloads = [line[6:] for line in (await _chat(port, True)).split(b"\n") if line.startswith(b"data: ")]
    assert payloads[-1] == sse.DONE
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert [sse.content_of(c) for c in chunks].count(pacer.CONTENT) == CHUNKS
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["completion_tokens"] == CHUNKS
    whole = json.loads(await _chat(port, False))
    assert whole["choices"][0]["message"]["content"] == pacer.CONTENT * CHUNKS


async def test_a_point_sees_every_stream_whole_and_at_the_pace(pacer_child: tuple[procs.Child, int]) -> None:
    child, port = pacer_child
    body = {"model": pacer.MODEL, "messages": [], "stream": True}
    load = Load(LOOPBACK, port, "/v1/chat/completions", body, {}, "[DONE]", 20, CHUNKS, PACE_S, 0.5)
    point = await run_point(load, None, child.pid)
    assert point.errors == 0 and point.short_streams == 0 and point.completed >= 20
    assert PACE_S * 1000 <= point.ttft_p50_ms < 200 and point.gap_p50_ms >= PACE_S * 1000 - 2
    assert point.chunks_per_s > 0 and point.upstream_ms_per_1k_chunks is not None


def test_the_memory_probe_reports_rss_and_python_objects_per_open_stream(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.streaming_scale import memory

    assert memory.main(["--streams", "20", "--frames", "4", "--settle", "1"]) == 0
    report = capsys.readouterr().out
    assert "### Memory per open stream (20 streams, chat, pushed, prompts of 2 bytes)" in report
    assert "- RSS per open stream: " in report and "| bytes per stream | allocated at |" in report
