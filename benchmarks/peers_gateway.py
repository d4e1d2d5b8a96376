"""This gateway in the peers run: open mode and all features on, and the issue's goals against the peers.

Both rows come from the configurations of the overhead benchmark (benchmarks/gateway_configs.py): `bare`
(open mode, cache off) and `all` (auth, Redis limits, the cache in Redis with every request a miss,
metrics, the request log line), each checked through its answers before it is measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import gateway_configs, gateway_server, nginx_upstream, procs


@dataclass(frozen=True, slots=True)
class GatewayRow:
    key: str
    config: str
    name: str


ROWS = (
    GatewayRow("gateway", "bare", "this gateway (llm-gateway serve, open mode)"),
    GatewayRow(
        "gateway-all", "all", "this gateway, all features on (auth, Redis limits, cache miss, metrics, log line)"
    ),
)
PEER_GOALS = {"portkey": 2.0, "litellm": 20.0}
"""Issue 11: all features on, at least this many times the peer's requests/s, in the same run."""


async def run_row(
    row: GatewayRow,
    workdir: Path,
    catalog: Path,
    measure: Callable[[str, Path], Awaitable[None]],
    say: Callable[[str], None],
) -> int:
    """Start the gateway in the row's configuration (with its Redis), check it, `measure(url, script)`,
    stop it; the gateway's pid tree's peak RSS in bytes."""
    config = gateway_configs.CONFIGS[row.config]
    async with gateway_configs.prepared(config, workdir, say) as setup:
        port = procs.free_port()
        say(f"starting this gateway ({row.config}) on port {port}")
        child = await gateway_server.start_gateway(
            "serve",
            workdir,
            catalog,
            port,
            config=row.config,
            keys_file=setup.keys_file,
            redis_url=setup.redis_url,
            extra_env=config.environment(1),
            label=row.key,
        )
        try:
            url = f"http://{procs.LOOPBACK}:{port}{nginx_upstream.CHAT_PATH}"
            await gateway_configs.check(url, config)
            await measure(url, config.script)
            return await asyncio.to_thread(procs.peak_rss_bytes, child.pid)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{child.log_tail(15)}") from exc
        finally:
            await child.stop()


def peer_goals(max_rps: dict[str, float]) -> list[dict[str, object]]:
    """`gateway-all`'s best requests/s over each measured peer's, against the goal."""
    own = max_rps.get("gateway-all")
    out: list[dict[str, object]] = []
    for peer, times in PEER_GOALS.items():
        theirs = max_rps.get(peer)
        ratio = None if not own or not theirs else round(own / theirs, 2)
        out.append(
            {"peer": peer, "goal_times": times, "ratio": ratio, "met": None if ratio is None else ratio >= times}
        )
    return out
