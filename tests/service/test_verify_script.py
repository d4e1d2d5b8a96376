"""scripts/verify against a real gateway in front of the simulated vLLM worker: every check passes and
prints its latency (and the stream's TTFT) with the right key; a wrong key, a missing key, a broken
stream or no gateway at all exit non-zero with the reason."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import SimulatorThread
from tests.conftest import catalog_yaml, start_gateway
from tests.servers import ServerThread

VERIFY = Path(__file__).resolve().parents[2] / "scripts" / "verify"
KEY = "sk-test-verify-5f0c2a7e"
CHECKS = ("health", "readyz", "auth", "models", "chat", "stream", "metrics")


def verify(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script (standard library only, so any python3 runs it; tests/deploy/test_scripts.py runs it
    through its shebang) with nothing of this process's environment but PATH."""
    return subprocess.run([sys.executable, str(VERIFY), *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env})


@pytest.fixture
def keyed_gateway(sim: SimulatorThread) -> Iterator[ServerThread]:
    text = catalog_yaml([("sim-a", sim.url)], idle=1.0, first_byte=3.0, extra_models=("drop-mid-stream",))
    with start_gateway(text, LLM_API_KEY=KEY) as server:
        yield server


def test_every_check_passes_and_prints_latency(keyed_gateway: ServerThread) -> None:
    result = verify("--url", keyed_gateway.url, "--key", KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    for check in CHECKS:
        assert re.search(rf"^  PASS  {check} +\d+\.\d ms  ", result.stdout, re.MULTILINE), check
    assert re.search(r"PASS  stream .*TTFT \d+\.\d ms, \d+ chunks to \[DONE\]", result.stdout)
    latency = next(line for line in result.stdout.splitlines() if line.startswith("latency: "))
    assert re.search(r"chat \d+\.\d ms", latency)
    assert re.search(r"stream TTFT \d+\.\d ms, stream total \d+\.\d ms", latency)
    assert "model chat, route default, worker sim-a" in result.stdout
    assert KEY not in result.stdout + result.stderr


def test_url_and_key_from_the_environment(keyed_gateway: ServerThread) -> None:
    result = verify(GATEWAY_URL=keyed_gateway.url, LLM_API_KEY=KEY)
    assert result.returncode == 0, result.stdout + result.stderr


def test_json_output(keyed_gateway: ServerThread) -> None:
    result = verify("--url", keyed_gateway.url, "--model", "chat", "--json", LLM_API_KEY=KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == list(CHECKS)
    stream = next(c for c in report["checks"] if c["name"] == "stream")
    assert 0 < stream["ttft_ms"] <= stream["total_ms"]


def test_a_wrong_key_fails(keyed_gateway: ServerThread) -> None:
    result = verify("--url", keyed_gateway.url, "--key", "sk-test-wrong")
    assert result.returncode == 1
    assert re.search(r"FAIL  models .*401 authentication_error.*check --key or LLM_API_KEY", result.stdout)
    assert "FAIL  chat" in result.stdout and "FAIL  stream" in result.stdout
    assert "verify: FAILED" in result.stderr


def test_no_key_against_a_keyed_gateway_fails(keyed_gateway: ServerThread) -> None:
    result = verify("--url", keyed_gateway.url)
    assert result.returncode == 1
    assert "FAIL  models" in result.stdout


def test_a_broken_stream_fails(keyed_gateway: ServerThread) -> None:
    result = verify("--url", keyed_gateway.url, "--model", "drop-mid-stream", LLM_API_KEY=KEY)
    assert result.returncode == 1
    assert re.search(r"FAIL  stream .*(error event|without data: \[DONE\])", result.stdout)


def test_an_open_gateway_passes_without_the_auth_check(sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("sim-a", sim.url)])) as server:
        result = verify("--url", server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS  auth" not in result.stdout and "no key" in result.stdout


def test_a_key_given_to_an_open_gateway_fails_the_auth_check(sim: SimulatorThread) -> None:
    with start_gateway(catalog_yaml([("sim-a", sim.url)])) as server:
        result = verify("--url", server.url, LLM_API_KEY=KEY)
    assert result.returncode == 1
    assert re.search(r"FAIL  auth .*WITHOUT a key", result.stdout)


def test_no_gateway_fails_with_a_clear_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens: the socket is bound, never listening
        result = verify("--url", f"http://127.0.0.1:{port}", "--timeout", "5", LLM_API_KEY=KEY)
    assert result.returncode == 1
    assert f"cannot reach http://127.0.0.1:{port}/health" in result.stdout
    assert "SKIP  chat" in result.stdout
