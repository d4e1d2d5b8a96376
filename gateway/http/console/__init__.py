"""The operator console at `/console`: sign-in with an admin key, keys, workers, the routing playground,
the live overview and captured interactions, over the same operations as the admin API."""

from gateway.http.console.routes import console_router

__all__ = ["console_router"]
