"""The relay hands a translating surface each worker chunk it decoded (`ChunkTap`), against the vLLM
simulator's real stream: every worker event it yields is the tap's event at that moment, with its
chunk decoded; the events it makes itself (`[DONE]`) are not; a relay without a tap relays the same
events, those that one read of the worker's body completed in one piece (one write to the client)."""

from __future__ import annotations

import asyncio

import msgspec

from gateway.upstream.chunk_tap import ChunkTap
from gateway.upstream.sse_events import sse_payloads
from gateway.upstream.sse_relay import DONE, relay_sse
from simulator import SimulatorThread
from tests.conftest import SIM_MODEL
from tests.upstream_streams import stream_opener


async def _relayed(url: str, tap: ChunkTap | None) -> list[tuple[bytes, bool]]:
    """Each event the relay yields, and whether the tap held it (with its decoded chunk) then."""
    body = {"model": SIM_MODEL, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 6,
            "messages": [{"role": "user", "content": "Say something"}]}
    seen = []
    async with stream_opener() as session:
        response = await session.post(url + "/v1/chat/completions", body)
        deadline = asyncio.get_running_loop().time() + 30
        async for event in relay_sse(response, worker_name="sim", idle_timeout=10, deadline=deadline,
                                     client_wants_usage=True, prompt_tokens_estimate=3, tap=tap):
            held = tap is not None and event is tap.event
            if held:
                assert tap is not None and tap.chunk == msgspec.json.decode(event[6:-2])
            seen.append((event, held))
    return seen


async def test_the_relay_hands_on_every_worker_chunk_decoded(sim: SimulatorThread) -> None:
    tapped = await _relayed(sim.url, ChunkTap())
    assert [held for _, held in tapped] == [True] * (len(tapped) - 1) + [False]
    assert tapped[-1][0] == DONE and len(tapped) >= 4  # role, content..., finish, usage, [DONE]
    untapped = await _relayed(sim.url, None)
    assert not any(held for _, held in untapped) and untapped[-1][0] == DONE
    assert len(sse_payloads(event for event, _ in untapped)) == len(tapped)
