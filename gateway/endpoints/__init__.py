"""HTTP handlers: thin functions that decode a request, call one function, and encode its result."""

from gateway.endpoints.admin import admin_routes
from gateway.endpoints.keys_api import keys_routes
from gateway.endpoints.openai_api import openai_routes
from gateway.endpoints.routing_api import routing_routes

__all__ = ["admin_routes", "keys_routes", "openai_routes", "routing_routes"]
