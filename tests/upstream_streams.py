"""Opening a worker's stream the way the gateway does (its own connections, `gateway.upstream.stream_pool`),
for tests that drive a relay directly."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from gateway.upstream.stream_connection import UpstreamStream
from gateway.upstream.stream_pool import StreamPool


class StreamOpener:
    """POSTs to a worker on one pool of connections (closed when the test's block ends)."""

    def __init__(self, pool: StreamPool) -> None:
        self.pool = pool

    async def post(self, url: str, body: bytes | dict[str, Any] = b"{}") -> UpstreamStream:
        """POST `body` (JSON for a dict) to the full `url`; the open response, whatever its status."""
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        return await self.pool.open(url, "", data, {"Content-Type": "application/json"}, worker_name="w",
                                    wait=30, connect_timeout=5)


@contextlib.asynccontextmanager
async def stream_opener() -> AsyncIterator[StreamOpener]:
    pool = StreamPool()
    try:
        yield StreamOpener(pool)
    finally:
        await pool.close()
