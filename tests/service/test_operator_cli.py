"""`llm-gateway status|chat|batch` against a gateway started by the test (and the simulated worker)."""

from __future__ import annotations

import argparse
import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

import gateway.cli.entry
from gateway.cli import batch as batch_command
from gateway.cli import chat as chat_command
from gateway.cli import status as status_command
from gateway.cli.batch_runner import ProgressBar, percentile
from simulator import SimulatorThread
from tests.conftest import FAULT_MODELS, catalog_yaml, start_gateway
from tests.servers import ServerThread

ADMIN = "sk-gw-operator-admin-0123456789"
USER = "sk-gw-operator-user-0123456789"


@pytest.fixture(scope="module")
def gw(vllm_sim: SimulatorThread) -> Iterator[ServerThread]:
    text = catalog_yaml([("sim-a", vllm_sim.url)], idle=1.0, first_byte=3.0, extra_models=FAULT_MODELS)
    with start_gateway(text, GATEWAY_ADMIN_KEY=ADMIN, LLM_API_KEY=USER) as server:
        yield server


@pytest.fixture(autouse=True, scope="module")
def quiet_gateway() -> Iterator[None]:
    """The gateway runs in this process: keep its log lines out of the commands' standard output."""
    with structlog.testing.capture_logs():
        yield


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_URL", "GATEWAY_PORT", "LLM_API_KEY", "GATEWAY_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    status_command.add_arguments(commands.add_parser("status"))
    chat_command.add_arguments(commands.add_parser("chat"))
    batch_command.add_arguments(commands.add_parser("batch"))
    args = parser.parse_args(argv)
    runs = {"status": status_command.run, "chat": chat_command.run, "batch": batch_command.run}
    return runs[args.command](args)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def answer_of(gw: ServerThread, prompt: str, **extra: object) -> str:
    body = {"model": "chat", "messages": [{"role": "user", "content": prompt}], **extra}
    response = httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {USER}"})
    return str(response.json()["choices"][0]["message"]["content"])


# status ---------------------------------------------------------------------------------------------


def test_status_shows_health_readiness_models_and_workers(gw: ServerThread, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    assert run("status", "--url", gw.url, "--admin-key", ADMIN) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"gateway {gw.url}: ok, ready"
    assert out[1] == "services: sim-a healthy"
    assert out[2] == f"models ({2 + len(FAULT_MODELS)}): chat, quick, " + ", ".join(FAULT_MODELS)
    assert out[3] == "workers (1):"
    assert out[4].split()[:5] == ["sim-a", "vllm", "healthy", "in", "flight"]


def test_status_with_a_user_key_says_workers_need_an_admin_key(gw: ServerThread, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_API_KEY", USER)
    monkeypatch.setenv("GATEWAY_URL", gw.url)
    assert run("status") == 0
    out = capsys.readouterr().out
    assert "models (" in out and "workers: an admin key is needed" in out


def test_status_as_json(gw: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("status", "--url", gw.url, "--key", USER, "--admin-key", ADMIN, "--json") == 0
    answers = json.loads(capsys.readouterr().out)
    assert answers["ready"] == {"status": 200, "body": {"status": "ready", "problems": []}}
    assert answers["health"]["body"]["status"] == "ok"
    assert [w["name"] for w in answers["workers"]["body"]["workers"]] == ["sim-a"]
    assert answers["models"]["body"]["object"] == "list"


def test_status_of_a_gateway_that_is_not_ready(vllm_sim: SimulatorThread, capsys: pytest.CaptureFixture[str]) -> None:
    text = catalog_yaml([("sim-a", vllm_sim.url)]).replace("  - name: quick\n", "  - name: quick\n"
                                                          "  - name: lonely\n    required: true\n", 1)
    with start_gateway(text) as server:
        assert run("status", "--url", server.url) == 1
    out = capsys.readouterr().out
    assert "NOT READY" in out and "problem: no healthy worker for required model 'lonely'" in out


def test_status_of_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("status", "--url", closed_port_url()) == 2
    assert "cannot reach" in capsys.readouterr().err


# chat -----------------------------------------------------------------------------------------------


def test_chat_streams_the_answer(gw: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("chat", "chat", "How do I start running?", "--url", gw.url, "--key", USER, "--max-tokens", "20",
               "-v") == 0
    captured = capsys.readouterr()
    assert captured.out == answer_of(gw, "How do I start running?", max_tokens=20) + "\n"
    assert captured.err.startswith("request req_") and "model chat" in captured.err and "worker sim-a" in captured.err
    assert re.search(r"  tokens \d+ in, \d+ out  \d+\.\d\d s$", captured.err)


def test_chat_without_streaming_and_from_standard_input(gw: ServerThread, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Plan my week"))
    assert run("chat", "chat", "--no-stream", "--url", gw.url, "--key", USER) == 0
    assert capsys.readouterr().out == answer_of(gw, "Plan my week") + "\n"


def test_chat_reports_refusals_and_broken_streams(gw: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("chat", "no-such-model", "hi", "--url", gw.url, "--key", USER) == 1
    assert "404" in capsys.readouterr().err
    assert run("chat", "chat", "hi", "--url", gw.url, "--key", "sk-gw-wrong") == 1
    assert "401" in capsys.readouterr().err
    assert run("chat", "mid-stream-error", "hi", "--url", gw.url, "--key", USER) == 1
    assert "the stream failed" in capsys.readouterr().err
    assert run("chat", "chat", "hi", "--url", closed_port_url()) == 2


# batch ----------------------------------------------------------------------------------------------


def test_batch_of_jsonl_prompts(gw: ServerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(item) for item in [
        "a plain string", {"prompt": "a prompt"}, {"messages": [{"role": "user", "content": "messages"}]},
        {"id": "short", "prompt": "cut me", "max_tokens": 3}, {"id": "bad", "model": "no-such-model", "prompt": "x"},
        "one", "two", "three"]) + "\n\n")
    results = tmp_path / "results.jsonl"
    assert run("batch", str(prompts), "--url", gw.url, "--key", USER, "-c", "3", "--model", "chat",
               "--out", str(results)) == 1
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].startswith("requests: 8, ok 7, errors 1, in ")
    assert out[1].startswith("latency: p50 ") and " p90 " in out[1] and " p99 " in out[1]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(8))
    assert [r["ok"] for r in rows] == [True, True, True, True, False, True, True, True]
    assert rows[3]["id"] == "short" and rows[3]["completion_tokens"] == 3
    assert rows[4]["status"] == 404 and "bad" in captured.err
    assert rows[0]["answer"] == answer_of(gw, "a plain string")
    tokens = sum(r["completion_tokens"] for r in rows)
    assert out[-1].startswith(f"tokens: {tokens} completion tokens, ") and out[-1].endswith(" tokens/s")
    assert all(r["request_id"].startswith("req_") for r in rows)


def test_batch_of_text_prompts_streamed(gw: ServerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"prompt number {n}\n" for n in range(10)))
    results = tmp_path / "results.jsonl"
    assert run("batch", str(prompts), "--url", gw.url, "--key", USER, "-c", "4", "--stream",
               "--out", str(results)) == 0
    out = capsys.readouterr().out
    assert out.startswith("requests: 10, ok 10, errors 0") and "time to first token: p50 " in out
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert all(r["ok"] and r["ttft_ms"] is not None and r["completion_tokens"] > 0 for r in rows)
    assert rows[2]["answer"] == answer_of(gw, "prompt number 2")


def test_batch_of_a_broken_stream_counts_an_error(gw: ServerThread, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "x", "model": "drop-mid-stream"}) + "\n" + json.dumps("fine") + "\n")
    assert run("batch", str(prompts), "--url", gw.url, "--key", USER, "--stream", "--model", "chat") == 1
    assert capsys.readouterr().out.startswith("requests: 2, ok 1, errors 1")


def test_batch_refuses_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"fine"\n{"max_tokens": 3}\n')
    assert run("batch", str(bad)) == 2
    assert "bad.jsonl:2: needs `prompt`" in capsys.readouterr().err
    bad.write_text("{nope\n")
    assert run("batch", str(bad)) == 2
    assert run("batch", str(tmp_path / "missing.txt")) == 2
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert run("batch", str(empty)) == 2
    assert run("batch", str(empty), "-c", "0") == 2


def test_batch_against_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    assert run("batch", str(prompts), "--url", closed_port_url()) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(100, 0, -1)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = ProgressBar(3, stream)
        for ok in (True, False, True):
            bar.advance(ok)
        bar.finish()
    assert terminal.getvalue().endswith("\r[" + "#" * 30 + "] 3/3  1 error(s)\n")
    assert pipe.getvalue() == ""


def test_the_commands_are_llm_gateway_subcommands(gw: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    assert gateway.cli.entry.main(["status", "--url", gw.url, "--admin-key", ADMIN]) == 0
    assert gateway.cli.entry.main(["chat", "chat", "hi", "--url", gw.url, "--key", USER]) == 0
    assert "ready" in capsys.readouterr().out
