"""HTTP handlers: thin functions that decode a request, call one function, and encode its result."""

from gateway.endpoints.openai_api import openai_routes

__all__ = ["openai_routes"]
