"""The app factory: builds the ASGI app from settings and a catalog, with every collaborator passed in."""

from __future__ import annotations

import time

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp

from gateway.endpoints import openai_routes
from gateway.error_responses import handle_exception
from gateway.pipeline import InferencePipeline
from gateway.request_id import RequestIdMiddleware
from gateway.settings import Settings
from gateway.upstream.openai_compatible import OpenAICompatibleClient
from gateway.worker_directory import WorkerDirectory
from routing.catalog import Catalog
from routing.model_choice import ModelChooser


def create_app(settings: Settings, catalog: Catalog) -> ASGIApp:
    client = OpenAICompatibleClient()
    directory = WorkerDirectory(catalog, settings.extra)
    pipeline = InferencePipeline(ModelChooser(catalog), directory, client)
    routes = openai_routes(pipeline, catalog, directory.served_models(), created=int(time.time()))
    cors = CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None
    app = Litestar(
        route_handlers=routes,
        on_startup=[client.start],
        on_shutdown=[client.close],
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.max_body_bytes,
        cors_config=cors,
        openapi_config=OpenAPIConfig(title="llm-gateway", version="0.1.0", path="/schema"),
        debug=False,
        logging_config=None,  # the gateway configures structlog itself (gateway.logging_setup)
    )
    # Outside Litestar, so that every response (unknown routes included) carries x-request-id.
    return RequestIdMiddleware(app)
