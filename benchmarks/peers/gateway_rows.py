"""This gateway in the peers run: open mode and all features on, and the issue's goals against the peers.

Both rows are configurations of the overhead suite (benchmarks/harness/configs.py): `bare`
(open mode, cache off) and `all` (auth, Redis limits, the cache in Redis with every request a miss,
metrics, the request log line), each checked through its answers before it is measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import config_checks, configs, gateway, nginx, proc_stats
from testkit.loopback import LOOPBACK, free_port


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
    config = configs.CONFIGS[row.config]
    async with configs.prepared(config, workdir, say) as setup:
        port = free_port()
        say(f"starting this gateway ({row.config}) on port {port}")
        child = await gateway.start_gateway(
            workdir,
            catalog,
            port,
            label=row.key,
            keys_file=setup.keys_file,
            redis_url=setup.redis_url,
            extra_env={**config.environment(1), **setup.environment},
        )
        try:
            url = f"http://{LOOPBACK}:{port}{nginx.CHAT_PATH}"
            await config_checks.check(url, config)
            await measure(url, config.script)
            return await asyncio.to_thread(proc_stats.peak_rss_bytes, child.pid)
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
