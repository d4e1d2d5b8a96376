"""Which protocol each kind of catalog worker speaks (`kind:` in the catalog).

A new protocol is one module implementing `WorkerProtocol` and one line here; a new kind of worker that
speaks an existing protocol is one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.protocols.base import WorkerProtocol
from gateway.protocols.llama_cpp import LlamaCppServer
from gateway.protocols.ollama import OllamaNative
from gateway.protocols.openai_compatible import OpenAICompatible, VllmServer

PROTOCOL_BY_KIND: Mapping[str, type[WorkerProtocol]] = MappingProxyType({
    "vllm": VllmServer,
    "openai": OpenAICompatible,
    "local": LlamaCppServer,  # llama.cpp's llama-server, started by `llm-gateway serve`
    "llamacpp": LlamaCppServer,  # llama.cpp's llama-server, started elsewhere
    "ollama": OllamaNative,
})


def protocols_by_kind() -> dict[str, WorkerProtocol]:
    """One instance of each protocol, by the worker kinds that speak it: the forwarder's lookup table (a
    dict lookup per attempt, by `WorkerSpec.kind`)."""
    instances: dict[type[WorkerProtocol], WorkerProtocol] = {}
    table: dict[str, WorkerProtocol] = {}
    for kind, protocol in PROTOCOL_BY_KIND.items():
        if protocol not in instances:
            instances[protocol] = protocol()
        table[kind] = instances[protocol]
    return table
