"""The head of an audio upload (`gateway.surfaces.multipart_head`, `gateway.surfaces.upload`): however the
body is cut into chunks, the model's value is found, and the body the worker gets is byte for byte the
form the client would have sent with the worker's model id, nothing else changed; the body can be sent
again only while nothing beyond the head was read from the client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from gateway.errors import InvalidRequest, PayloadTooLarge
from gateway.surfaces.audio import AUDIO_TRANSCRIPTIONS, read_head
from gateway.surfaces.multipart_head import MultipartHead, boundary_of
from gateway.surfaces.upload import StreamedUpload

BOUNDARY = "5e1f0e0b9d7c4a3e"
AUDIO = bytes(range(256)) + f"\r\n--{BOUNDARY[:-1]}".encode() + b"--\r\n\r\n" * 3


def form(model: str, *, file_first: bool = False, audio: bytes = AUDIO) -> bytes:
    """The body httpx (so the openai SDK) sends: the text fields, then the file (or the file first)."""
    fields = {"language": "de", "model": model, "response_format": "text"}
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if file_first:
        request = httpx.Request("POST", "http://x/", headers=headers,
                                files={"file": ("talk.wav", audio, "audio/wav"), "model": (None, model)})
    else:
        request = httpx.Request("POST", "http://x/", data=fields, files={"file": ("talk.wav", audio)}, headers=headers)
    return request.read()


class Chunks:
    """A client's body in given chunks (the `BodySource` the HTTP layer gives)."""

    def __init__(self, chunks: list[bytes], fail: Exception | None = None) -> None:
        self._chunks = iter(chunks)
        self._fail = fail
        self.reads = 0

    async def read(self) -> bytes | None:
        self.reads += 1
        chunk = next(self._chunks, None)
        if chunk is None and self._fail is not None:
            raise self._fail
        return chunk


def cuts(body: bytes) -> Iterator[list[bytes]]:
    """The body cut in two at every place, and in pieces of 1 to 7 bytes."""
    for at in range(1, len(body)):
        yield [body[:at], body[at:]]
    for size in range(1, 8):
        yield [body[i:i + size] for i in range(0, len(body), size)]


async def forwarded(chunks: list[bytes], model: str, total: int | None = None) -> tuple[bytes, StreamedUpload]:
    source = Chunks(chunks)
    head = await read_head(source, BOUNDARY.encode(), lookahead=1 << 20)
    upload = StreamedUpload(head, f"multipart/form-data; boundary={BOUNDARY}", total, source)
    return b"".join([piece async for piece in upload.body_with(model)]), upload


@pytest.mark.parametrize("file_first", [False, True])
def test_the_model_is_rewritten_and_nothing_else_however_the_body_is_cut(file_first: bool) -> None:
    sent, expected = form("whisper", file_first=file_first), form("worker/whisper-large-v3", file_first=file_first)
    for chunks in cuts(sent):
        body, _ = asyncio.run(forwarded(chunks, "worker/whisper-large-v3"))
        assert body == expected, [len(c) for c in chunks[:3]]


def test_the_head_stops_at_the_model_with_the_fields_before_it() -> None:
    head = MultipartHead(BOUNDARY.encode())
    body = form("whisper")
    assert head.feed(body)
    assert head.fields == {"language": "de", "model": "whisper"}  # response_format and the file: not read
    start, end = head.model_span or (0, 0)
    assert body[start:end] == b"whisper"


def test_the_declared_length_follows_the_rewrite() -> None:
    sent = form("w")
    body, upload = asyncio.run(forwarded([sent], "a-much-longer-model-id", total=len(sent)))
    assert upload.length_with("a-much-longer-model-id") == len(body) == len(form("a-much-longer-model-id"))


def test_a_body_without_model_or_with_model_too_far_is_a_400_on_model() -> None:
    no_model = httpx.Request("POST", "http://x/", files={"file": ("a.wav", AUDIO)},
                             headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}).read()
    with pytest.raises(InvalidRequest) as missing:
        asyncio.run(read_head(Chunks([no_model]), BOUNDARY.encode(), lookahead=1 << 20))
    assert missing.value.param == "model"
    late = form("whisper", file_first=True, audio=AUDIO * 100)
    with pytest.raises(InvalidRequest) as too_far:
        asyncio.run(read_head(Chunks([late[i:i + 1000] for i in range(0, len(late), 1000)]), BOUNDARY.encode(),
                              lookahead=4096))
    assert too_far.value.param == "model" and "before `file`" in too_far.value.message


def test_only_multipart_bodies_with_a_boundary_are_taken() -> None:
    assert boundary_of('multipart/form-data; charset=utf-8; boundary="a b"') == b"a b"
    assert boundary_of("Multipart/Form-Data; boundary=xyz") == b"xyz"
    for content_type in (None, "application/json", "multipart/form-data"):
        with pytest.raises(InvalidRequest):
            boundary_of(content_type)


def test_the_upload_is_replayable_until_a_byte_beyond_the_head_is_read() -> None:
    sent = form("whisper")
    at = sent.index(b"talk.wav")

    async def run() -> None:
        source = Chunks([sent[:at], sent[at:]])
        head = await read_head(source, BOUNDARY.encode(), lookahead=1 << 20)
        upload = StreamedUpload(head, "multipart/form-data", None, source)
        body = upload.body_with("m")
        first = await anext(body)
        assert upload.replayable and b"\r\n\r\nm\r\n" in first
        await anext(body)
        assert not upload.replayable

    asyncio.run(run())


def test_a_client_failure_while_streaming_is_kept_as_the_uploads_error() -> None:
    sent = form("whisper")

    async def run() -> None:
        source = Chunks([sent], fail=PayloadTooLarge("too large"))
        upload = StreamedUpload(await read_head(source, BOUNDARY.encode(), 1 << 20), "multipart/form-data", None,
                                source)
        with pytest.raises(PayloadTooLarge):
            _ = [piece async for piece in upload.body_with("m")]
        assert isinstance(upload.error, PayloadTooLarge)

    asyncio.run(run())


def test_the_surface_checks_the_fields_it_read_and_routes_on_no_text() -> None:
    head = MultipartHead(BOUNDARY.encode())
    head.feed(form("whisper"))
    request = AUDIO_TRANSCRIPTIONS.upload_request(head, StreamedUpload(head, "multipart/form-data", None,
                                                                       Chunks([])))
    assert request.requested_model == "whisper" and request.upload is not None and not request.stream
    assert AUDIO_TRANSCRIPTIONS.routing_text(request.body) == ""
    assert AUDIO_TRANSCRIPTIONS.cache_fields(request.body) is None
    for field, value in (("response_format", "mp3"), ("stream", "maybe"), ("temperature", "warm")):
        with pytest.raises(InvalidRequest) as refused:
            AUDIO_TRANSCRIPTIONS.check({field: value})
        assert refused.value.param == field
