"""llm-gateway: an OpenAI-compatible gateway and router in front of vLLM, Ollama and llama.cpp workers."""

from gateway.app.factory import create_app
from gateway.settings import Settings, load_settings

__all__ = ["Settings", "create_app", "load_settings"]
