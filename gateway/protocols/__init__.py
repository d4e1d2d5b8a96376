"""Worker protocols: how the gateway talks to each kind of worker (OpenAI-compatible: vLLM, OpenAI;
llama.cpp's own server; Ollama native), behind one interface (`base.WorkerProtocol`), each declaring its
capabilities. One module per protocol; `registry` maps catalog worker kinds to them."""

from gateway.protocols.base import Capabilities, StreamRelay, WorkerProtocol
from gateway.protocols.llama_cpp import LlamaCppServer
from gateway.protocols.ollama import OllamaNative
from gateway.protocols.openai_compatible import OpenAICompatible, VllmServer
from gateway.protocols.registry import PROTOCOL_BY_KIND, protocols_by_kind

__all__ = ["PROTOCOL_BY_KIND", "Capabilities", "LlamaCppServer", "OllamaNative", "OpenAICompatible", "StreamRelay",
           "VllmServer", "WorkerProtocol", "protocols_by_kind"]
