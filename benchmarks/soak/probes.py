"""What the soak reads from the running system besides /proc (the gateway's memory and file descriptors:
benchmarks/harness/proc_stats.py): Redis's keys and their TTLs (SCAN + TTL), the gateway's request
counters (/metrics) and its request log lines.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio

KEY_PREFIX = "llmgw:"
EXEMPT_PREFIXES = (KEY_PREFIX + "key:", KEY_PREFIX + "keyid:")
"""API-key records (`gateway/auth/redis_key_store.py`): persistent by design, they live until revoked (or
until their key's `expires_at`); reported apart, not as keys missing a TTL."""
SCAN_BATCH = 1000
GATEWAY_CLIENT_NAME = "llm-gateway"
"""The name the gateway's Redis connections give themselves (`gateway/shared_state/redis_client.py`)."""
ENDPOINT = "chat/completions"
LOG_PATH = "/v1/chat/completions"


@dataclass(slots=True)
class RedisKeys:
    total: int = 0
    with_ttl: int = 0
    without_ttl: int = 0
    """Keys of the gateway (`llmgw:`) with no TTL that are not API-key records: must stay 0."""
    exempt_without_ttl: int = 0
    """API-key records without a TTL (persistent by design)."""
    other_prefix: int = 0
    """Keys outside `llmgw:` (a shared Redis given by REDIS_URL); not checked."""
    families: dict[str, int] = field(default_factory=dict)
    """Keys by family (`llmgw:rl`, `llmgw:cache`, ...)."""
    offenders: list[str] = field(default_factory=list)
    """A few of the keys without a TTL."""
    used_memory: int = 0
    gateway_connections: int = 0
    """Connections Redis has from clients named `llm-gateway` (the gateway's pools: bounded, they grow with
    the concurrency seen and keep their connections)."""


def _family(name: str) -> str:
    rest = name[len(KEY_PREFIX) :]
    return KEY_PREFIX + rest.split(":", 1)[0]


async def scan_keys(client: redis.asyncio.Redis) -> RedisKeys:
    """Every key with its TTL (-1: none; a key gone between SCAN and TTL is skipped)."""
    found = RedisKeys()
    names: list[str] = []
    async for raw in client.scan_iter(count=SCAN_BATCH):
        names.append(raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))
    families: Counter[str] = Counter()
    for start in range(0, len(names), SCAN_BATCH):
        batch = names[start : start + SCAN_BATCH]
        async with client.pipeline(transaction=False) as pipe:
            for name in batch:
                pipe.ttl(name)
            ttls = await pipe.execute()
        for name, ttl in zip(batch, ttls, strict=True):
            if ttl == -2:
                continue
            if not name.startswith(KEY_PREFIX):
                found.other_prefix += 1
                continue
            found.total += 1
            families[_family(name)] += 1
            if ttl >= 0:
                found.with_ttl += 1
            elif name.startswith(EXEMPT_PREFIXES):
                found.exempt_without_ttl += 1
            else:
                found.without_ttl += 1
                if len(found.offenders) < 5:
                    found.offenders.append(name)
    found.families = dict(sorted(families.items()))
    info = await client.info("memory")
    found.used_memory = int(info.get("used_memory", 0))
    found.gateway_connections = sum(1 for c in await client.client_list() if c.get("name") == GATEWAY_CLIENT_NAME)
    return found


_SAMPLE = re.compile(r"^llm_gateway_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def requests_by_class(exposition: str, endpoint: str = ENDPOINT) -> Counter[str]:
    """`llm_gateway_requests_total` of `endpoint`, summed by `status_class`."""
    counts: Counter[str] = Counter()
    for match in _SAMPLE.finditer(exposition):
        labels = dict(_LABEL.findall(match.group("labels")))
        if labels.get("endpoint") == endpoint:
            counts[labels.get("status_class", "?")] += int(float(match.group("value")))
    return counts


async def scrape_requests(http: httpx.AsyncClient, gateway_url: str) -> Counter[str]:
    response = await http.get(gateway_url + "/metrics")
    response.raise_for_status()
    return requests_by_class(response.text)


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass(slots=True)
class LoggedRequests:
    by_class: Counter[str] = field(default_factory=Counter)
    """Canonical request lines of chat completions, by status class."""
    warnings: Counter[str] = field(default_factory=Counter)
    """Lines at warning level or above, by event."""
    not_json: int = 0
    """Lines that were not JSON (uvicorn's own messages, tracebacks)."""
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The lines of the requests asked for by id."""


def logged_requests(path: Path, offset: int, request_ids: Container[str] = ()) -> LoggedRequests:
    """What the gateway logged after byte `offset` of its log; the lines of `request_ids` kept whole."""
    found = LoggedRequests()
    with path.open("rb") as log:
        log.seek(offset)
        for raw in log:
            try:
                line = json.loads(raw)
            except ValueError:
                found.not_json += 1
                continue
            if not isinstance(line, dict):
                found.not_json += 1
            elif line.get("event") == "request" and line.get("path") == LOG_PATH:
                status = int(line.get("status", 0))
                found.by_class["499" if status == 499 else f"{status // 100}xx"] += 1
                request_id = line.get("request_id")
                if isinstance(request_id, str) and request_id in request_ids:
                    found.by_id[request_id] = line
            elif line.get("level") in ("warning", "error", "critical"):
                found.warnings[str(line.get("event"))] += 1
    return found
