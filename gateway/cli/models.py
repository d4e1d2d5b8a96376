"""`llm-gateway models list|pull`: what each worker of the catalog has, and pulling what Ollama lacks."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from gateway.settings import load_settings
from gateway.workers.control_client import ControlClient, PullProgress
from gateway.workers.model_setup import inventory, pull_missing
from routing.catalog import CatalogError, load_catalog


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="per worker: the catalog's models present, loaded or missing")
    pulling = actions.add_parser("pull", help="pull missing models onto Ollama workers, with progress")
    pulling.add_argument("model", nargs="?", help="a catalog model or worker model id (default: every "
                         "required model a worker lacks)")
    pulling.add_argument("--worker", help="only this worker")
    for action in (listing, pulling):
        action.add_argument("--config", help="the catalog (default: $GATEWAY_CONFIG or config/models.yaml)")


def _bar(worker: str, model: str) -> PullProgress:
    terminal = sys.stdout.isatty()

    def show(status: str, completed: int | None, total: int | None) -> None:
        share = f" {100 * (completed or 0) // total:3d}%" if total else ""
        filled = (30 * (completed or 0) // total) if total else 0
        bar = f" [{'#' * filled}{'.' * (30 - filled)}]" if total else ""
        line = f"{worker}: {model}: {status}{bar}{share}"
        if terminal:
            print("\r" + line.ljust(100), end="\n" if status == "success" else "", flush=True)
        elif status in ("success",) or not total:
            print(line, flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        catalog = load_catalog(args.config or settings.config_path)
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.models_command == "pull":
        async def pulling() -> list[str]:
            async with ControlClient(os.environ) as control:
                return await pull_missing(catalog, control, model=args.model, worker_name=args.worker,
                                          on_progress=_bar)

        problems = asyncio.run(pulling())
        for problem in problems:
            print(f"llm-gateway models: {problem}", file=sys.stderr)
        return 1 if problems else 0

    async def listing() -> int:
        async with ControlClient(os.environ) as control:
            entries = await inventory(catalog, control)
        missing_required = 0
        for entry in entries:
            print(f"{entry.worker} ({entry.kind}){'' if entry.reachable else ': unreachable'}")
            for name, upstream_id in sorted(entry.wanted.items()):
                state = "present" if entry.has(upstream_id) else "missing"
                if entry.loaded is not None and entry.has(upstream_id):
                    loaded = upstream_id in entry.loaded or f"{upstream_id}:latest" in entry.loaded
                    state = "loaded" if loaded else "present"
                flag = " [required]" if name in entry.required else ""
                print(f"  {name}{flag} as {upstream_id}: {state if entry.reachable else 'unknown'}")
                missing_required += state == "missing" and name in entry.required
        return 1 if missing_required else 0

    return asyncio.run(listing())
