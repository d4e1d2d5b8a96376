"""Workers at runtime (admin keys only): inspect, add, drain, resume, remove; pull and delete models on
Ollama workers (pull progress streamed back as NDJSON); load and unload LoRA adapters on vLLM workers.
Changes go to the shared worker overlay, so every replica applies them (`gateway.workers.overlay`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Stream

from gateway.auth.authenticator import Authenticator
from gateway.errors import InvalidRequest, NotFound
from gateway.http.callers import admin_of
from gateway.http.openapi_bodies import ADAPTER_BODY, PULL_BODY, WORKER_BODY, with_body
from gateway.workers.active_catalog import CatalogHolder
from gateway.workers.control_client import ControlClient
from gateway.workers.model_setup import PullFailed, pull
from gateway.workers.overlay import OverlayStore, WorkerOverlay
from routing.catalog import CatalogError, WorkerSpec

AnyRequest = Request[Any, Any, Any]


def _json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object body (empty: `{}`); 400 for anything else."""
    try:
        body = msgspec.json.decode(raw or b"{}")
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for invalid UTF-8
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


class WorkerOperations:
    """What the admin API and the console do to workers: read their state, change the shared overlay."""

    def __init__(self, runtimes: CatalogHolder, overlays: OverlayStore) -> None:
        self.runtimes = runtimes
        self.overlays = overlays

    def status(self) -> dict[str, Any]:
        """Workers with health, ejections, load, models present and loaded, and whether drained."""
        runtimes = self.runtimes
        pool = runtimes.current.pool
        rows = pool.status(asyncio.get_running_loop().time())
        overlay = runtimes.overlay
        for row in rows:
            state = pool.workers[str(row["name"])]
            load = state.load
            row.update({"drained": row["name"] in overlay.drained, "weight": state.spec.weight,
                        "load": {"waiting": load.waiting, "running": load.running, "kv_usage": load.kv_usage},
                        "models_present": sorted(load.present_models) if load.present_models is not None else None,
                        "models_loaded": sorted(load.resident_models) if load.resident_models is not None else None})
        return {"workers": rows, "overlay_version": overlay.version}

    async def change(self, edit: Callable[[WorkerOverlay], WorkerOverlay]) -> dict[str, Any]:
        runtimes = self.runtimes
        current = await self.overlays.get()
        updated = msgspec.structs.replace(edit(current), version=max(current.version, runtimes.overlay.version) + 1)
        try:
            runtimes.set_overlay(updated)  # validate here first: a bad change never reaches the store
        except CatalogError as exc:
            raise InvalidRequest("; ".join(exc.problems), code="invalid_worker_change") from None
        await self.overlays.put(updated)
        return {"version": updated.version, "workers": [w.name for w in runtimes.current.catalog.workers]}

    def worker(self, name: str) -> WorkerSpec:
        spec = next((w for w in self.runtimes.current.catalog.workers if w.name == name), None)
        if spec is None:
            raise NotFound(f"No worker named `{name}`.", param="name", code="worker_not_found")
        return spec

    async def drain(self, name: str) -> dict[str, Any]:
        self.worker(name)
        return await self.change(lambda o: msgspec.structs.replace(
            o, drained=(*[n for n in o.drained if n != name], name)))

    async def resume(self, name: str) -> dict[str, Any]:
        return await self.change(lambda o: msgspec.structs.replace(
            o, drained=tuple(n for n in o.drained if n != name)))


def workers_routes(runtimes: CatalogHolder, overlays: OverlayStore, authenticator: Authenticator,
                   control: ControlClient) -> list[HTTPRouteHandler]:
    operations = WorkerOperations(runtimes, overlays)
    change, worker = operations.change, operations.worker

    @get("/admin/workers", summary="Workers with health, ejections, load, models present and loaded")
    async def list_workers(request: AnyRequest) -> dict[str, Any]:
        await admin_of(request, authenticator)
        return operations.status()

    @post("/admin/workers", status_code=201, summary="Add a worker (every replica)",
          operation_class=with_body(WORKER_BODY))
    async def add_worker(request: AnyRequest) -> dict[str, Any]:
        await admin_of(request, authenticator)
        try:
            spec = msgspec.json.decode(await request.body(), type=WorkerSpec)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # (ValidationError is a DecodeError)
            raise InvalidRequest(f"Not a worker: {exc}", code="invalid_worker") from None
        return await change(lambda o: msgspec.structs.replace(
            o, added=(*[w for w in o.added if w.name != spec.name], spec),
            removed=tuple(n for n in o.removed if n != spec.name)))

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
        worker(name)
        return await change(lambda o: msgspec.structs.replace(
            o, removed=(*[n for n in o.removed if n != name], name), added=tuple(w for w in o.added if w.name != name)))

    @post("/admin/workers/{name:str}/models/pull", summary="Pull a model onto an Ollama worker (NDJSON progress)",
          operation_class=with_body(PULL_BODY))
    async def pull_model(request: AnyRequest, name: FromPath[str]) -> Response[Any]:
        await admin_of(request, authenticator)
        spec = worker(name)
        model = _json_object(await request.body()).get("model")
        if spec.kind != "ollama" or not isinstance(model, str):
            raise InvalidRequest("Give `model`; only Ollama workers pull models.", param="model")
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def run() -> None:
            def progress(status: str, completed: int | None, total: int | None) -> None:
                queue.put_nowait(msgspec.json.encode({"status": status, "completed": completed, "total": total})
                                 + b"\n")
            try:
                await pull(control, spec, model, progress)
            except PullFailed as exc:
                queue.put_nowait(msgspec.json.encode({"error": str(exc)}) + b"\n")
            queue.put_nowait(None)

        task = asyncio.create_task(run())

        async def lines() -> AsyncIterator[bytes]:
            try:
                while (line := await queue.get()) is not None:
                    yield line
            finally:
                task.cancel()

        return Stream(lines(), media_type="application/x-ndjson")

    @delete("/admin/workers/{name:str}/models/{model:path}", status_code=200, summary="Delete a model (Ollama)")
    async def delete_model(request: AnyRequest, name: FromPath[str], model: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        spec = worker(name)
        if spec.kind != "ollama":
            raise InvalidRequest("Only Ollama workers delete models.", param="name")
        await control.delete_model(spec, model.lstrip("/"))
        return {"worker": name, "model": model.lstrip("/"), "deleted": True}

    @post("/admin/workers/{name:str}/adapters", status_code=201, summary="Load a LoRA adapter (vLLM)",
          operation_class=with_body(ADAPTER_BODY))
    async def load_adapter(request: AnyRequest, name: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        spec = worker(name)
        body = _json_object(await request.body())
        adapter, path = body.get("lora_name"), body.get("lora_path")
        if spec.kind != "vllm" or not isinstance(adapter, str) or not isinstance(path, str):
            raise InvalidRequest("Give `lora_name` and `lora_path`; only vLLM workers load adapters.")
        await control.load_adapter(spec, adapter, path)
        return await change(lambda o: msgspec.structs.replace(o, adapters={
            **o.adapters, name: (*[a for a in o.adapters.get(name, ()) if a != adapter], adapter)}))

    @delete("/admin/workers/{name:str}/adapters/{adapter:str}", status_code=200, summary="Unload a LoRA adapter")
    async def unload_adapter(request: AnyRequest, name: FromPath[str], adapter: FromPath[str]) -> dict[str, Any]:
        await admin_of(request, authenticator)
        spec = worker(name)
        await control.unload_adapter(spec, adapter)
        return await change(lambda o: msgspec.structs.replace(o, adapters={
            **o.adapters, name: tuple(a for a in o.adapters.get(name, ()) if a != adapter)}))

    return [list_workers, add_worker, drain, resume, remove, pull_model, delete_model, load_adapter, unload_adapter]

