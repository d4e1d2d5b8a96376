"""`llm-gateway`: serve the gateway, check a catalog, run a worker simulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.settings import SettingsError, load_settings
from routing.catalog import Catalog, CatalogError, load_catalog

DESCRIPTION = """\
An OpenAI-compatible LLM gateway: point any OpenAI SDK's base_url at it, and it routes each request
to the workers of config/models.yaml (vLLM, Ollama, llama.cpp, OpenAI).

Settings come from the environment (GATEWAY_PORT, GATEWAY_CONFIG, LOG_LEVEL, CORS_ORIGINS, ...):
see docs/configuration.md.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llm-gateway", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway (and the catalog's local workers)",
                                description="Run the gateway on GATEWAY_HOST:GATEWAY_PORT (default "
                                "127.0.0.1:3100), starting and supervising the catalog's `local` workers.")
    serve.add_argument("--config", help="the catalog to serve (default: $GATEWAY_CONFIG or config/models.yaml)")
    serve.add_argument("--host", help="address to bind (default: $GATEWAY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: $GATEWAY_PORT or 3100)")
    serve.add_argument("--workers", type=int, help="server processes (default: $GATEWAY_WORKERS or 1)")
    serve.add_argument("--no-local-workers", action="store_true",
                       help="do not start the catalog's local workers (they run elsewhere)")

    check = commands.add_parser("check", help="validate a catalog and print a summary",
                                description="Validate a catalog file: exit 0 and print a summary if it "
                                "is valid, else print every problem with the path of its field and exit 1.")
    check.add_argument("config", nargs="?", help="the catalog (default: $GATEWAY_CONFIG or config/models.yaml)")

    routes = commands.add_parser("routes", help="test the routing rules against a file of cases",
                                 description="Routing rules under test: `llm-gateway routes test FILE` routes "
                                 "each request of FILE without calling a worker and checks the model chosen.")
    routes_commands = routes.add_subparsers(dest="routes_command", required=True, metavar="ACTION")
    routes_test = routes_commands.add_parser("test", help="run a YAML file of {request, expect} cases")
    routes_test.add_argument("file", help="the cases (see docs/configuration.md, 'Routing rules under test')")
    routes_test.add_argument("--config", help="the catalog (default: the file's `catalog`, $GATEWAY_CONFIG, "
                             "or config/models.yaml)")

    keys = commands.add_parser("keys", help="create, list and revoke API keys",
                               description="API keys through a running gateway's admin API (an admin key "
                               "in --admin-key or $GATEWAY_ADMIN_KEY); `hash` needs no gateway.")
    from gateway.cli.keys import add_arguments as add_keys_arguments

    add_keys_arguments(keys)

    models = commands.add_parser("models", help="list the catalog's models per worker; pull missing ones",
                                 description="What each worker of the catalog has (present, loaded, missing), "
                                 "and pulling missing models onto Ollama workers with progress.")
    from gateway.cli.models import add_arguments as add_models_arguments

    add_models_arguments(models)

    status = commands.add_parser("status", help="a running gateway's health, readiness, models and workers",
                                 description="Health (/health), readiness (/readyz), models (/v1/models) and "
                                 "workers (/admin/workers, with an admin key) of a running gateway; exit 0 when "
                                 "ready, 1 when not, 2 when unreachable.")
    from gateway.cli.status import add_arguments as add_status_arguments

    add_status_arguments(status)

    chat = commands.add_parser("chat", help="one chat completion, streamed to the terminal",
                               description="Send one chat completion to a running gateway and stream the answer.")
    from gateway.cli.chat import add_arguments as add_chat_arguments

    add_chat_arguments(chat)

    batch = commands.add_parser("batch", help="run a file of prompts concurrently; print a latency summary",
                                description="Run the prompts of a JSONL or text file against a running gateway, "
                                "-c at a time, and print count, errors, latency p50/p90/p99 and tokens/s.")
    from gateway.cli.batch import add_arguments as add_batch_arguments

    add_batch_arguments(batch)

    dataset = commands.add_parser("dataset", help="fine-tuning sets and training stats from captured interactions",
                                  description="Export captured interactions (GATEWAY_CAPTURE_DIR) as fine-tuning "
                                  "sets (chat or preference JSONL), with counts per rating and label.")
    from gateway.cli.dataset import add_arguments as add_dataset_arguments

    add_dataset_arguments(dataset)

    simulate = commands.add_parser("simulate", help="run a simulated vLLM or Ollama worker",
                                   description="Run a simulated vLLM or Ollama worker for tests, "
                                   "benchmarks and demos without a GPU.")
    from simulator.cli import add_arguments as add_simulator_arguments

    add_simulator_arguments(simulate)

    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.config)
    if args.command == "keys":
        from gateway.cli.keys import run as run_keys

        return run_keys(args)
    if args.command == "models":
        from gateway.cli.models import run as run_models

        return run_models(args)
    if args.command == "status":
        from gateway.cli.status import run as run_status

        return run_status(args)
    if args.command == "chat":
        from gateway.cli.chat import run as run_chat

        return run_chat(args)
    if args.command == "batch":
        from gateway.cli.batch import run as run_batch

        return run_batch(args)
    if args.command == "dataset":
        from gateway.cli.dataset import run as run_dataset

        return run_dataset(args)
    if args.command == "routes":
        return _routes_test(args.file, args.config)
    if args.command == "simulate":
        from simulator.cli import run as run_simulator

        return int(run_simulator(args))
    return _serve(args)


def _check(path: str | None) -> int:
    try:
        settings = load_settings()
        catalog = load_catalog(path or settings.config_path)
    except (CatalogError, SettingsError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(summarize(catalog, path or settings.config_path))
    return 0


def _routes_test(path: str, config: str | None) -> int:
    from gateway.cli.route_cases import run_route_cases

    try:
        default = config or load_settings().config_path
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    ok, lines = run_route_cases(path, default, override=config is not None)
    print("\n".join(lines))
    return 0 if ok else 1


def summarize(catalog: Catalog, source: str) -> str:
    lines = [f"{source}: valid", f"models ({len(catalog.models)}):"]
    servers: dict[str, list[str]] = {}
    for worker in catalog.workers:
        for served in worker.served():
            servers.setdefault(served.name, []).append(f"{worker.name} ({worker.kind})")
    for model in catalog.models:
        where = ", ".join(servers.get(model.name, [])) or "no worker: requests for it get 503"
        flag = " [required]" if model.required else ""
        lines.append(f"  {model.name}{flag}: {where}")
    lines.append(f"routing: default model {catalog.routing.default_model or '(none)'}, "
                 f"{len(catalog.routing.routes)} rule(s)")
    for i, rule in enumerate(catalog.routing.routes):
        lines.append(f"  {rule.name or f'routes[{i}]'}: /{rule.pattern}/i -> {rule.model}")
    lines.append(f"workers ({len(catalog.workers)}):")
    for worker in catalog.workers:
        lines.append(f"  {worker.name}: {worker.kind} at {worker.url}, weight {worker.weight}")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    from gateway.app.server import serve

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"llm-gateway: {exc}", file=sys.stderr)
        return 2
    return serve(settings, config=args.config, host=args.host, port=args.port, workers=args.workers,
                 start_local_workers=not args.no_local_workers and settings.start_local_workers)


if __name__ == "__main__":
    sys.exit(main())
