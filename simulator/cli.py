"""Command line of the simulator: `python -m simulator` or `llm-gateway simulate`.

`add_arguments` fills a parser (the gateway's CLI mounts it as a subcommand), `run` serves until
SIGINT or SIGTERM. Example: `python -m simulator --kind vllm --port 8001 --model llama --itl 0.02`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from simulator.config import SimulatorConfig
from simulator.faults import FAULT_NAMES
from simulator.server import start_simulator

DEFAULT_PORTS = {"vllm": 8000, "ollama": 11434}
"""The real servers' default ports, used when --port is not given."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to `parser`."""
    defaults = SimulatorConfig()
    parser.add_argument("--kind", choices=("vllm", "ollama"), default="vllm", help="server to imitate")
    parser.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8000 for vllm, 11434 for ollama; 0: any)")
    parser.add_argument(
        "--model", dest="models", action="append", metavar="NAME", help="model to serve (repeatable; default sim-model)"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the reply text")
    parser.add_argument("--response-text", default=None, help="a fixed reply instead of generated words")
    parser.add_argument(
        "--reply-tokens",
        nargs=2,
        type=int,
        default=defaults.reply_tokens,
        metavar=("LOW", "HIGH"),
        help="range of a reply's natural length in tokens (default %(default)s)",
    )
    parser.add_argument("--default-max-tokens", type=int, default=defaults.default_max_tokens, help="limit when unset")
    parser.add_argument("--ttft", type=float, default=defaults.ttft_overhead_s, help="fixed time to first token (s)")
    parser.add_argument(
        "--prefill-per-token", type=float, default=defaults.prefill_s_per_token, help="prefill per uncached token (s)"
    )
    parser.add_argument("--itl", type=float, default=defaults.itl_s, help="inter-token latency (s)")
    parser.add_argument(
        "--concurrency-slowdown",
        type=float,
        default=defaults.concurrency_slowdown,
        help="latencies * (1 + this * (running - 1))",
    )
    parser.add_argument("--time-scale", type=float, default=defaults.time_scale, help="multiply every delay by this")
    parser.add_argument("--fault", default=None, help=f"fault for every request: {', '.join(FAULT_NAMES)}")
    parser.add_argument("--kv-blocks", type=int, default=defaults.kv_blocks, help="KV-cache blocks")
    parser.add_argument("--block-tokens", type=int, default=defaults.block_tokens, help="tokens per KV-cache block")
    parser.add_argument("--max-records", type=int, default=defaults.max_records, help="request records kept")
    group = parser.add_argument_group("vLLM")
    group.add_argument("--api-key", default=None, help="require this bearer token on /v1")
    group.add_argument("--max-running", type=int, default=defaults.max_running, help="requests at once (max_num_seqs)")
    group.add_argument("--max-queued", type=int, default=None, help="waiting requests before 503 (default: no limit)")
    group.add_argument("--max-model-len", type=int, default=defaults.max_model_len, help="context length")
    group.add_argument("--keepalive-comments", action="store_true", help="send ': keep-alive' SSE comments")
    group.add_argument(
        "--enable-prompt-tokens-details", action="store_true", help="usage.prompt_tokens_details.cached_tokens"
    )
    group.add_argument(
        "--max-num-batched-tokens",
        type=int,
        default=None,
        help="token budget per step: switches to the step model (vLLM's chunked-prefill scheduler)",
    )
    group.add_argument(
        "--kv-events-endpoint",
        default=None,
        help="step model: publish KV-cache events on this ZMQ endpoint (as vLLM's --kv-events-config)",
    )
    group.add_argument("--kv-events-topic", default="", help="topic of the KV-event messages (default: none)")
    group.add_argument(
        "--step-overhead", type=float, default=defaults.step_overhead_s, help="step model: time of a step (s)"
    )
    group.add_argument(
        "--step-per-token", type=float, default=defaults.step_s_per_token, help="step model: time per token (s)"
    )
    group = parser.add_argument_group("Ollama")
    group.add_argument("--num-parallel", type=int, default=defaults.num_parallel, help="requests at once per model")
    group.add_argument("--max-queue", type=int, default=defaults.max_queue, help="waiting requests before 503")
    group.add_argument("--cold-load", type=float, default=defaults.cold_load_seconds, help="model load time (s)")
    group.add_argument("--max-loaded-models", type=int, default=defaults.max_loaded_models, help="models in memory")
    group.add_argument("--preloaded", action="store_true", help="start with the models loaded")


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The `SimulatorConfig` the parsed options describe."""
    port = args.port if args.port is not None else DEFAULT_PORTS[args.kind]
    return SimulatorConfig(
        kind=args.kind,
        models=tuple(args.models) if args.models else ("sim-model",),
        host=args.host,
        port=port,
        seed=args.seed,
        response_text=args.response_text,
        reply_tokens=(args.reply_tokens[0], args.reply_tokens[1]),
        default_max_tokens=args.default_max_tokens,
        ttft_overhead_s=args.ttft,
        prefill_s_per_token=args.prefill_per_token,
        itl_s=args.itl,
        concurrency_slowdown=args.concurrency_slowdown,
        time_scale=args.time_scale,
        max_num_batched_tokens=args.max_num_batched_tokens,
        step_overhead_s=args.step_overhead,
        step_s_per_token=args.step_per_token,
        kv_events_endpoint=args.kv_events_endpoint,
        kv_events_topic=args.kv_events_topic,
        fault=args.fault,
        kv_blocks=args.kv_blocks,
        block_tokens=args.block_tokens,
        max_records=args.max_records,
        api_key=args.api_key,
        max_running=args.max_running,
        max_queued=args.max_queued,
        max_model_len=args.max_model_len,
        keepalive_comments=args.keepalive_comments,
        prompt_tokens_details=args.enable_prompt_tokens_details,
        num_parallel=args.num_parallel,
        max_queue=args.max_queue,
        cold_load_seconds=args.cold_load,
        max_loaded_models=args.max_loaded_models,
        preloaded=args.preloaded,
        shutdown_timeout_s=2.0,
    )


async def serve(config: SimulatorConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on this platform
            loop.add_signal_handler(signum, stop.set)
    async with start_simulator(config) as simulator:
        models = ", ".join(config.models)
        print(f"simulated {config.kind} serving {models} at {simulator.url}", file=sys.stderr, flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    """Run the simulator the options describe; blocks until SIGINT or SIGTERM. The exit status."""
    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"simulator: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config))
    except OSError as error:
        print(f"simulator: cannot serve on {config.host}:{config.port}: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description="Simulated vLLM or Ollama worker.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
