"""A faithful stand-in for vLLM and Ollama workers, for tests and benchmarks of the gateway.

    with SimulatorThread(SimulatorConfig(kind="vllm", models=("sim-model",))) as sim:
        client = openai.OpenAI(base_url=sim.url + "/v1", api_key="x")

A vLLM worker serves chat, completions, embeddings, OpenAI Responses (`/v1/responses`) and Anthropic
Messages (`/v1/messages`, `/v1/messages/count_tokens`); an Ollama worker its native `/api/*` routes and
its Responses and Messages layers. See `simulator.config` for the settings, `simulator.faults` for the
faults, `simulator.tool_calls` for when a reply is a tool call, and `simulator.text` for how tokens are
counted and replies written.
"""

from simulator.config import SimulatorConfig, SimulatorKind
from simulator.faults import FAULT_NAMES, Fault, FaultKind, parse_fault
from simulator.records import RequestRecord
from simulator.server import Simulator, SimulatorThread, start_simulator

__all__ = [
    "FAULT_NAMES",
    "Fault",
    "FaultKind",
    "RequestRecord",
    "Simulator",
    "SimulatorConfig",
    "SimulatorKind",
    "SimulatorThread",
    "parse_fault",
    "start_simulator",
]
