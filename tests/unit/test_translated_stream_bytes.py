"""The translated surfaces' streams stay byte for byte what they were, however the relay hands them their
chunks: the Responses and Messages events of recorded chat streams (`translated_streams`), from the relay's
bytes alone or with its decoded chunks (`ChunkTap`), against digests recorded from the encoders before the
tap and the pre-encoded delta events (commit 1f66dd1); each event's JSON as msgspec would encode it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from gateway.surfaces import ANTHROPIC_MESSAGES, InferenceRequest, Surface
from gateway.surfaces.responses import RESPONSES
from gateway.upstream.chunk_tap import ChunkTap
from tests.unit.translated_streams import DONE, MESSAGES_BODIES, RESPONSES_BODY, STREAMS, digest, normalized

RECORDED = {
    "responses/text": "558ce446d04321ce",
    "messages-plain/text": "4c118ec6bac86fb0",
    "messages-thinking/text": "4c118ec6bac86fb0",
    "responses/stop-sequence": "e04a74a02e173b7d",
    "messages-plain/stop-sequence": "222a11020030cb29",
    "messages-thinking/stop-sequence": "665f55920ba8f8d6",
    "responses/tools": "7828fa42cb306965",
    "messages-plain/tools": "e1cba39869364cae",
    "messages-thinking/tools": "e1cba39869364cae",
    "responses/thinking": "a3314d622fd3057c",
    "messages-plain/thinking": "a9034c5c02ca9e4e",
    "messages-thinking/thinking": "191224ec51fdddba",
    "responses/length": "3270f29b8e776483",
    "messages-plain/length": "4d5e40dfa1f5441d",
    "messages-thinking/length": "4d5e40dfa1f5441d",
    "responses/no-usage": "c4daf3afa23979a8",
    "messages-plain/no-usage": "f6e230828a1e0477",
    "messages-thinking/no-usage": "f6e230828a1e0477",
    "responses/error": "15bb5981631da058",
    "messages-plain/error": "a6aca9e4909904e6",
    "messages-thinking/error": "a6aca9e4909904e6",
    "responses/cut": "83fc2fe93cffa119",
    "messages-plain/cut": "98579a6a9216ddce",
    "messages-thinking/cut": "98579a6a9216ddce",
}
"""sha256 (first 16 hex digits) of each normalized translation, as the encoders of 1f66dd1 made it."""


def _request(case: str) -> tuple[Surface, InferenceRequest]:
    surface, _, _ = case.partition("/")
    if surface == "responses":
        return RESPONSES, RESPONSES.decode(msgspec.json.encode(RESPONSES_BODY))
    return ANTHROPIC_MESSAGES, ANTHROPIC_MESSAGES.decode(msgspec.json.encode(MESSAGES_BODIES[surface[9:]]))


async def _relayed(pieces: list[bytes], tap: ChunkTap | None) -> AsyncIterator[bytes]:
    """`pieces` as the relay yields them: each worker chunk noted in `tap` with its decoded form (not the
    error event nor `[DONE]`, which the relay makes or passes on undecoded)."""
    for piece in pieces:
        if tap is not None and piece != DONE:
            chunk = msgspec.json.decode(piece[6:-2])
            if "error" not in chunk:
                tap.event, tap.chunk = piece, chunk
        yield piece


async def _translated(case: str, tapped: bool, pieces: list[bytes] | None = None) -> bytes:
    surface, request = _request(case)
    if not tapped:
        request.tap = None
    assert (request.tap is not None) == tapped
    relayed = _relayed(STREAMS[case.partition("/")[2]], request.tap) if pieces is None else _relayed(pieces, None)
    stream = surface.encode_stream(relayed, request)
    return b"".join([piece async for piece in stream])


@pytest.mark.parametrize("case", list(RECORDED))
async def test_a_stream_translates_to_the_recorded_bytes_with_or_without_the_tap(case: str) -> None:
    untapped, tapped = await _translated(case, tapped=False), await _translated(case, tapped=True)
    assert digest(untapped) == RECORDED[case]
    assert normalized(tapped) == normalized(untapped)


@pytest.mark.parametrize("case", [case for case in RECORDED if not case.startswith("messages-thinking")])
async def test_every_event_is_its_json_as_msgspec_encodes_it(case: str) -> None:
    """The events built from fixed byte pieces (the per-chunk deltas) are what encoding their dicts makes."""
    for block in (await _translated(case, tapped=True)).removesuffix(b"\n\n").split(b"\n\n"):
        name, data = block.split(b"\n")
        decoded = msgspec.json.decode(data.removeprefix(b"data: "))
        assert msgspec.json.encode(decoded) == data.removeprefix(b"data: ")
        assert name == b"event: " + decoded["type"].encode()


async def test_a_responses_stream_cut_anywhere_translates_the_same() -> None:
    """Pieces that are not the relay's whole events, nor noted in the request's tap (a cache replay's,
    another relay's), are split here."""
    whole = b"".join(STREAMS["tools"])
    pieces = [whole[start:start + 7] for start in range(0, len(whole), 7)]
    cut = await _translated("responses/tools", tapped=True, pieces=pieces)
    assert normalized(cut) == normalized(await _translated("responses/tools", tapped=False))
