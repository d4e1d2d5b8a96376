"""HTTP handlers: thin functions that decode a request, call one function, and encode its result."""

from gateway.http.routes.admin import admin_routes
from gateway.http.routes.keys import keys_routes
from gateway.http.routes.openai import openai_routes
from gateway.http.routes.routing import routing_routes

__all__ = ["admin_routes", "keys_routes", "openai_routes", "routing_routes"]
