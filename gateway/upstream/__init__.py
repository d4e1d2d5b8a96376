"""The data plane's side of aiohttp: the client every worker is called through, whatever its protocol,
and the relays of worker streams (SSE as it is, NDJSON through a protocol's translator); their errors
become ours here."""

from gateway.upstream.client import WorkerClient, WorkerTarget

__all__ = ["WorkerClient", "WorkerTarget"]
