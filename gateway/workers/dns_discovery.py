"""Workers discovered by DNS: a host name that resolves to several addresses (a Kubernetes headless
Service) becomes one worker per address, named `<worker>@<address>`."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

import msgspec

from routing.catalog import WorkerSpec


async def resolve_members(spec: WorkerSpec) -> list[WorkerSpec]:
    """One copy of `spec` per address its host resolves to, sorted; raises OSError if it does not resolve."""
    parts = urlsplit(spec.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = sorted({str(info[4][0]) for info in infos})
    return [msgspec.structs.replace(spec, name=f"{spec.name}@{address}", discovery="static",
                                    base_url=_with_host(spec.url, address)) for address in addresses]


def _with_host(url: str, address: str) -> str:
    parts = urlsplit(url)
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}{':' + parts.password if parts.password else ''}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
