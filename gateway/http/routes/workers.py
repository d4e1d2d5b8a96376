"""Workers at runtime (admin keys only): inspect, add, drain, resume, remove; pull and delete models on
Ollama workers (pull progress streamed back as NDJSON); load and unload LoRA adapters on vLLM workers.
Changes go to the shared worker overlay, so every replica applies them (`gateway.workers.overlay`); the
operations themselves are `worker_operations.WorkerOperations`, which the console calls too."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Stream

from gateway.auth.authenticator import Authenticator
from gateway.http.callers import admin_of
from gateway.http.openapi_bodies import ADAPTER_BODY, PULL_BODY, WORKER_BODY, with_body
from gateway.http.routes.worker_operations import WorkerOperations
from gateway.workers.active_catalog import CatalogHolder
from gateway.workers.control_client import ControlClient
from gateway.workers.overlay import OverlayStore

AnyRequest = Request[Any, Any, Any]


def workers_routes(runtimes: CatalogHolder, overlays: OverlayStore, authenticator: Authenticator,
                   control: ControlClient) -> list[HTTPRouteHandler]:
    operations = WorkerOperations(runtimes, overlays, control)

    @get("/admin/workers", summary="Workers with health, ejections, load, models present and loaded")
    async def list_workers(request: AnyRequest) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return operations.status()

    @post("/admin/workers", status_code=201, summary="Add a worker (every replica)",
          operation_class=with_body(WORKER_BODY))
    async def add_worker(request: AnyRequest) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await operations.add(await request.body())

    @post("/admin/workers/{name:str}/drain", status_code=200, summary="Send a worker no new requests")
    async def drain(request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await operations.drain(name)

    @post("/admin/workers/{name:str}/resume", status_code=200, summary="Undo a drain")
    async def resume(request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await operations.resume(name)

    @delete("/admin/workers/{name:str}", status_code=200, summary="Remove a worker (in-flight requests finish)")
    async def remove(request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await operations.remove(name)

    @post("/admin/workers/{name:str}/models/pull", summary="Pull a model onto an Ollama worker (NDJSON progress)",
          operation_class=with_body(PULL_BODY))
    async def pull_model(request: AnyRequest, name: FromPath[str]) -> Response[Any]:
        await admin_of(request, authenticator)
        return Stream(operations.pull_progress(name, await request.body()), media_type="application/x-ndjson")

    @delete("/admin/workers/{name:str}/models/{model:path}", status_code=200, summary="Delete a model (Ollama)")
    async def delete_model(request: AnyRequest, name: FromPath[str], model: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await operations.delete_model(name, model)

    @post("/admin/workers/{name:str}/adapters", status_code=201, summary="Load a LoRA adapter (vLLM)",
          operation_class=with_body(ADAPTER_BODY))
    async def load_adapter(request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await operations.load_adapter(name, await request.body())

    @delete("/admin/workers/{name:str}/adapters/{adapter:str}", status_code=200, summary="Unload a LoRA adapter")
    async def unload_adapter(request: AnyRequest, name: FromPath[str], adapter: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return await operations.unload_adapter(name, adapter)

    return [list_workers, add_worker, drain, resume, remove, pull_model, delete_model, load_adapter, unload_adapter]
