"""The simulated Ollama server's model management endpoints and its status endpoints.

`GET /` ("Ollama is running"), `GET /api/version`, `GET /api/tags`, `GET /api/ps`, `POST /api/show`,
`DELETE /api/delete`, and `POST /api/pull`, whose NDJSON progress goes `pulling manifest`,
`pulling <digest>` with `total`/`completed`, `verifying sha256 digest`, `writing manifest`, `success`
(any name can be pulled; it is in /api/tags once `success` is sent).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.ollama_models import MODEL_SIZE_BYTES, InstalledModel, ModelStore, normalize_name
from simulator.ollama_requests import model_name, ollama_error, read_json_body
from simulator.streaming import ChunkStream, json_response, ndjson_line, record_of


class OllamaAdminEndpoints:
    """Status and model management handlers of one simulated Ollama worker."""

    def __init__(self, config: SimulatorConfig, store: ModelStore) -> None:
        self.config = config
        self.store = store

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.root)
        app.router.add_get("/api/version", self.version)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_get("/api/ps", self.ps)
        app.router.add_post("/api/show", self.show)
        app.router.add_post("/api/pull", self.pull)
        app.router.add_delete("/api/delete", self.delete)

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def version(self, request: web.Request) -> web.Response:
        return json_response({"version": self.config.version})

    async def tags(self, request: web.Request) -> web.Response:
        return json_response(self.store.tags_body())

    async def ps(self, request: web.Request) -> web.Response:
        return json_response(self.store.ps_body())

    async def show(self, request: web.Request) -> web.Response:
        name = model_name(request, await read_json_body(request))
        model = self.store.find(name)
        if model is None:
            raise ollama_error(404, f"model '{name}' not found")
        return json_response(self.store.show_body(model))

    async def delete(self, request: web.Request) -> web.Response:
        name = model_name(request, await read_json_body(request))
        if not self.store.delete(name):
            raise ollama_error(404, f"model '{name}' not found")
        return web.Response(status=200)

    async def pull(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_body(request)
        name = model_name(request, body)
        record = record_of(request)
        record.stream = body.get("stream") is not False
        steps = _pull_progress(name)
        if not record.stream:
            await asyncio.sleep(self.config.pull_step_s * len(steps))
            self.store.install(name)
            return json_response({"status": "success"})
        stream = await ChunkStream.open(request, "application/x-ndjson")
        for index, step in enumerate(steps):
            if index > 0 and self.config.pull_step_s > 0:
                await asyncio.sleep(self.config.pull_step_s)
            if step["status"] == "success":
                self.store.install(name)
            await stream.send(ndjson_line(step))
        return await stream.finish()


def _pull_progress(name: str) -> list[dict[str, Any]]:
    """The progress lines of pulling `name`, as Ollama sends them."""
    digest = f"sha256:{InstalledModel(normalize_name(name), 0.0).digest}"
    total = MODEL_SIZE_BYTES
    downloading = [
        {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total, "completed": total * part // 4}
        for part in range(5)
    ]
    return [
        {"status": "pulling manifest"},
        *downloading,
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]
