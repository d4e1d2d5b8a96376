"""The console's JSON API for workers, under `/console/api/workers`: their state, and drain, resume, add,
remove, Ollama pulls (progress streamed as NDJSON) and LoRA adapters, through the admin API's own
`WorkerOperations`; each change logged with the admin key's id."""

from __future__ import annotations

from typing import Any

from litestar import Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Stream

from gateway.http.console.guard import AnyRequest, ConsoleGuard
from gateway.http.routes.worker_operations import WorkerOperations, json_object


def worker_routes(guard: ConsoleGuard, operations: WorkerOperations) -> list[HTTPRouteHandler]:
    @get("/api/workers", include_in_schema=False)
    async def list_workers(request: AnyRequest) -> dict[str, Any]:
        await guard.session(request)
        return operations.status()

    @post("/api/workers/{name:str}/drain", status_code=200, include_in_schema=False)
    async def drain(request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        session = await guard.session(request)
        changed = await operations.drain(name)
        guard.log(request, session, "worker_drain", target=name)
        return changed

    @post("/api/workers/{name:str}/resume", status_code=200, include_in_schema=False)
    async def resume(request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        session = await guard.session(request)
        changed = await operations.resume(name)
        guard.log(request, session, "worker_resume", target=name)
        return changed

    @post("/api/workers", status_code=201, include_in_schema=False)
    async def add(request: AnyRequest) -> dict[str, Any]:
        session = await guard.session(request)
        raw = await request.body()
        changed = await operations.add(raw)
        guard.log(request, session, "worker_add", target=json_object(raw).get("name"))
        return changed

    @delete("/api/workers/{name:str}", status_code=200, include_in_schema=False)
    async def remove(request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        session = await guard.session(request)
        changed = await operations.remove(name)
        guard.log(request, session, "worker_remove", target=name)
        return changed

    @post("/api/workers/{name:str}/models/pull", include_in_schema=False)
    async def pull_model(request: AnyRequest, name: FromPath[str]) -> Response[Any]:
        session = await guard.session(request)
        raw = await request.body()
        lines = operations.pull_progress(name, raw)
        guard.log(request, session, "model_pull", target=name, model=json_object(raw).get("model"))
        return Stream(lines, media_type="application/x-ndjson")

    @post("/api/workers/{name:str}/adapters", status_code=201, include_in_schema=False)
    async def load_adapter(request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        session = await guard.session(request)
        changed = await operations.load_adapter(name, await request.body())
        guard.log(request, session, "adapter_load", target=name)
        return changed

    @delete("/api/workers/{name:str}/adapters/{adapter:str}", status_code=200, include_in_schema=False)
    async def unload_adapter(request: AnyRequest, name: FromPath[str], adapter: FromPath[str]) -> dict[str, Any]:
        session = await guard.session(request)
        changed = await operations.unload_adapter(name, adapter)
        guard.log(request, session, "adapter_unload", target=name, adapter=adapter)
        return changed

    return [list_workers, drain, resume, add, remove, pull_model, load_adapter, unload_adapter]
