"""The gateway's CPU cost per request in instructions, old commit against the working tree, without noise.

Wall-clock comparisons on a shared box vary by ±15 % between runs of the same code; instruction counts
do not. Each gateway runs (one `serve` process, from its own tree, in front of nginx, its Redis as the
overhead runs give it) under valgrind's callgrind, answers N requests sent one at a time (a new body each,
as the cache-miss wrk script sends), and is stopped, so that callgrind writes its total. Two runs with
different N per tree and configuration: the difference of their totals over the difference of N is the
cost of one request, start-up and shutdown cancelled out. valgrind is ~50x slower, hence the long waits.

    python -m benchmarks.overhead.instructions --compare-to REV [--configs bare,all] [--requests 100,500]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.harness import configs, gateway, nginx, procs
from benchmarks.harness.cli import name_list, number_list, run, say
from benchmarks.load import workloads
from benchmarks.overhead.compare import check_source, checked_out, describe_trees
from testkit.loopback import LOOPBACK, free_port

READY_TIMEOUT_S = 900.0
STOP_GRACE_S = 300.0
HASH_SEED = "0"
"""A fixed `PYTHONHASHSEED`: dict and set layouts, hence instruction counts, repeat from run to run."""


@dataclass(frozen=True, slots=True)
class Run:
    """Where one gateway run happens: its configuration, tree and the number of requests sent."""

    config: configs.GatewayConfig
    tree: str
    source: gateway.Source
    requests: int


def valgrind_argv(out_file: Path, port: int, source: gateway.Source) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", *gateway.argv("serve", port, source)]


def total_instructions(out_file: Path) -> int:
    """The `summary:` (or `totals:`) line callgrind writes at exit."""
    found = re.search(r"^(?:summary|totals): (\d+)", out_file.read_text(errors="replace"), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{out_file}: no summary line (did the gateway exit cleanly?)")
    return int(found.group(1))


async def send(url: str, workload: workloads.Workload, requests: int) -> None:
    """`requests` chat completions one after another; each must answer 200."""
    async with httpx.AsyncClient(trust_env=False, timeout=120.0) as client:
        for n in range(requests):
            body = workload.body(f"instr-{n:06d}", n)  # same length in every run
            response = await client.post(url, content=body, headers={**gateway.AUTH_HEADERS,
                                                                     "Content-Type": "application/json"})  # fmt: skip
            if response.status_code != 200:
                raise RuntimeError(f"POST {url} answered {response.status_code}: {response.text[:300]}")


async def measure_run(workdir: Path, catalog: Path, run_: Run, out_dir: Path) -> int:
    """Start the gateway under callgrind, send the requests, stop it: its total instructions (its
    callgrind file is `out_dir/callgrind.<config>-<tree>-<requests>`, for callgrind_annotate)."""
    name = f"{run_.config.name}-{run_.tree}-{run_.requests}"
    rundir = workdir / name
    await asyncio.to_thread(rundir.mkdir)
    out_file = out_dir / f"callgrind.{name}"
    async with configs.prepared(run_.config, rundir) as setup:
        port = free_port()
        env = gateway.environment(catalog, port, keys_file=setup.keys_file, redis_url=setup.redis_url,
                                  extra={**run_.config.environment(), **setup.environment, "PYTHONHASHSEED": HASH_SEED},
                                  source=run_.source)  # fmt: skip
        say(f"{name}: starting under callgrind on port {port}")
        child = await procs.start_ready(
            name, valgrind_argv(out_file, port, run_.source), rundir / "gateway.log",
            f"http://{LOOPBACK}:{port}/v1/models", env=env, cwd=run_.source.tree, headers=gateway.AUTH_HEADERS,
            timeout_s=READY_TIMEOUT_S,
        )  # fmt: skip
        try:
            await send(f"http://{LOOPBACK}:{port}{nginx.CHAT_PATH}", workloads.WORKLOADS[run_.config.workload],
                       run_.requests)  # fmt: skip
        finally:
            await child.stop(grace_s=STOP_GRACE_S)
    total = total_instructions(out_file)
    say(f"{name}: {total:,} instructions")
    return total


async def per_request(workdir: Path, catalog: Path, runs: list[Run], out_dir: Path) -> float:
    """Instructions per request from two runs of one gateway with different request counts."""
    small, large = runs
    totals = [await measure_run(workdir, catalog, one, out_dir) for one in runs]
    return (totals[1] - totals[0]) / (large.requests - small.requests)


async def compare(
    rev: str, config_names: list[str], requests: list[int], jobs: int, out_dir: Path
) -> dict[str, dict[str, float]]:
    """Instructions per request by configuration and tree (`old`, `new`); `jobs` gateways at a time."""
    trees = describe_trees(rev)
    gate = asyncio.Semaphore(jobs)
    with tempfile.TemporaryDirectory(prefix="llm-gateway-instructions-") as tmp:
        workdir = Path(tmp)
        async with checked_out(str(trees["old"]["commit"]), workdir / "old-tree") as old:
            sources = {"old": old, "new": gateway.WORKING_TREE}
            for source in sources.values():
                await check_source(source)
            nginx_port = free_port()
            nginx_child = await nginx.start_nginx(workdir / "nginx", nginx_port)
            try:
                catalog = gateway.write_catalog(workdir, nginx_port)

                async def one(config: str, tree: str) -> tuple[str, str, float]:
                    async with gate:
                        runs = [Run(configs.CONFIGS[config], tree, sources[tree], n) for n in requests]
                        return config, tree, await per_request(workdir, catalog, runs, out_dir)

                results = await asyncio.gather(*(one(c, t) for c in config_names for t in sources))
            finally:
                await nginx_child.stop()
    table: dict[str, dict[str, float]] = {}
    for config, tree, value in results:
        table.setdefault(config, {})[tree] = value
    return table


def render(rev: str, table: dict[str, dict[str, float]]) -> str:
    lines = [f"| configuration | old {rev} (Ir/request) | new (Ir/request) | new/old |", "|---|---:|---:|---:|"]
    for config, sides in table.items():
        lines.append(f"| {config} | {sides['old']:,.0f} | {sides['new']:,.0f} | {sides['new'] / sides['old']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead.instructions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--compare-to", metavar="REV", required=True, help="the older commit (any git revision)")
    parser.add_argument("--configs", type=lambda text: name_list(text, list(configs.CONFIGS), "configuration"),
                        default=["bare", "all"], help="configurations (default bare,all)")  # fmt: skip
    parser.add_argument(
        "--requests", type=number_list, default=[100, 500], help="the two request counts (default 100,500)"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("benchmarks/runs/instructions"),
        help="where the callgrind files go (default benchmarks/runs/instructions)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="gateways under callgrind at a time (default 2)")
    args = parser.parse_args(argv)
    if len(args.requests) != 2:
        parser.error("--requests takes two counts")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    table = run(compare(args.compare_to, args.configs, args.requests, args.jobs, args.out_dir.resolve()), say)
    print(render(args.compare_to, table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
