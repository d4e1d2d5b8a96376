"""What the admin API (`routes/workers`) and the console do to workers: read their state, change the shared
worker overlay (every replica applies it: `gateway.workers.overlay`), pull and delete models on Ollama
workers, load and unload LoRA adapters on vLLM workers. One function per operation, so both callers
behave alike; request bodies are taken raw and checked here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from gateway.errors import InvalidRequest, NotFound
from gateway.workers.active_catalog import CatalogHolder
from gateway.workers.control_client import ControlClient
from gateway.workers.model_setup import PullFailed, pull
from gateway.workers.overlay import OverlayStore, WorkerOverlay
from routing.catalog import CatalogError, WorkerSpec


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object body (empty: `{}`); 400 for anything else."""
    try:
        body = msgspec.json.decode(raw or b"{}")
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for invalid UTF-8
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


class WorkerOperations:
    def __init__(self, runtimes: CatalogHolder, overlays: OverlayStore, control: ControlClient) -> None:
        self.runtimes = runtimes
        self.overlays = overlays
        self.control = control

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

    async def add(self, raw: bytes) -> dict[str, Any]:
        try:
            spec = msgspec.json.decode(raw, type=WorkerSpec)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # (ValidationError is a DecodeError)
            raise InvalidRequest(f"Not a worker: {exc}", code="invalid_worker") from None
        return await self.change(lambda o: msgspec.structs.replace(
            o, added=(*[w for w in o.added if w.name != spec.name], spec),
            removed=tuple(n for n in o.removed if n != spec.name)))

    async def drain(self, name: str) -> dict[str, Any]:
        self.worker(name)
        return await self.change(lambda o: msgspec.structs.replace(
            o, drained=(*[n for n in o.drained if n != name], name)))

    async def resume(self, name: str) -> dict[str, Any]:
        return await self.change(lambda o: msgspec.structs.replace(
            o, drained=tuple(n for n in o.drained if n != name)))

    async def remove(self, name: str) -> dict[str, Any]:
        self.worker(name)
        return await self.change(lambda o: msgspec.structs.replace(
            o, removed=(*[n for n in o.removed if n != name], name), added=tuple(w for w in o.added if w.name != name)))

    def pull_progress(self, name: str, raw: bytes) -> AsyncIterator[bytes]:
        """Pull `model` (JSON body) onto Ollama worker `name`: its progress as NDJSON lines (`status`,
        `completed`, `total`; an `error` line if it failed). Leaving early cancels the pull."""
        spec = self.worker(name)
        model = json_object(raw).get("model")
        if spec.kind != "ollama" or not isinstance(model, str):
            raise InvalidRequest("Give `model`; only Ollama workers pull models.", param="model")
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def run() -> None:
            def progress(status: str, completed: int | None, total: int | None) -> None:
                queue.put_nowait(msgspec.json.encode({"status": status, "completed": completed, "total": total})
                                 + b"\n")
            try:
                await pull(self.control, spec, model, progress)
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

        return lines()

    async def delete_model(self, name: str, model: str) -> dict[str, Any]:
        spec = self.worker(name)
        if spec.kind != "ollama":
            raise InvalidRequest("Only Ollama workers delete models.", param="name")
        await self.control.delete_model(spec, model.lstrip("/"))
        return {"worker": name, "model": model.lstrip("/"), "deleted": True}

    async def load_adapter(self, name: str, raw: bytes) -> dict[str, Any]:
        spec = self.worker(name)
        body = json_object(raw)
        adapter, path = body.get("lora_name"), body.get("lora_path")
        if spec.kind != "vllm" or not isinstance(adapter, str) or not isinstance(path, str):
            raise InvalidRequest("Give `lora_name` and `lora_path`; only vLLM workers load adapters.")
        await self.control.load_adapter(spec, adapter, path)
        return await self.change(lambda o: msgspec.structs.replace(o, adapters={
            **o.adapters, name: (*[a for a in o.adapters.get(name, ()) if a != adapter], adapter)}))

    async def unload_adapter(self, name: str, adapter: str) -> dict[str, Any]:
        spec = self.worker(name)
        await self.control.unload_adapter(spec, adapter)
        return await self.change(lambda o: msgspec.structs.replace(o, adapters={
            **o.adapters, name: tuple(a for a in o.adapters.get(name, ()) if a != adapter)}))
