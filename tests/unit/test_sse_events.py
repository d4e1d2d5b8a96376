"""The one stream parser (gateway.upstream.sse_events): SSE and NDJSON split into payloads the same way
whatever the chunk boundaries, with the SSE format's line endings, comments, fields and multi-line data."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from gateway.upstream.sse_events import (
    DONE_DATA,
    NdjsonSplitter,
    SseSplitter,
    StreamFormatError,
    decode_chunk,
    ends_with_done,
    error_of,
    sse_payloads,
)

STREAM = (b": keep-alive\n\n"
          b'data: {"a": 1}\n\n'
          b"event: message\nid: 7\nretry: 500\ndata:{\"b\": 2}\r\n\r\n"
          b"data: line one\ndata: line two\n: a comment inside\ndata:\n\n"
          b'data: {"error": {"message": "boom"}}\r\r'
          b"data: [DONE]\n\n")
PAYLOADS = [b'{"a": 1}', b'{"b": 2}', b"line one\nline two\n", b'{"error": {"message": "boom"}}', DONE_DATA]


def split(stream: bytes, cuts: tuple[int, ...]) -> list[bytes]:
    bounds = [0, *cuts, len(stream)]
    return [stream[start:end] for start, end in itertools.pairwise(bounds)]


def all_splits(stream: bytes) -> Iterator[list[bytes]]:
    """The stream cut at every position, and at every pair of positions."""
    for first in range(len(stream) + 1):
        yield split(stream, (first,))
        for second in range(first, len(stream) + 1, 3):
            yield split(stream, (first, second))


def test_one_chunk_gives_every_payload_in_order() -> None:
    assert sse_payloads([STREAM]) == PAYLOADS


def test_chunk_boundaries_do_not_matter() -> None:
    for chunks in all_splits(STREAM):
        assert sse_payloads(chunks) == PAYLOADS, chunks
    assert sse_payloads([bytes([byte]) for byte in STREAM]) == PAYLOADS  # byte by byte


def test_events_come_out_as_soon_as_their_blank_line_arrives() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b'data: {"a"') == []
    assert splitter.feed(b": 1}\n") == []
    assert splitter.feed(b"\n") == [b'{"a": 1}']
    assert splitter.feed(b'data: {"b": 2}\n\ndata: {"c": 3}\n\n') == [b'{"b": 2}', b'{"c": 3}']


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(ending: bytes) -> None:
    stream = b"data: x" + ending + b"data: y" + ending + ending + b"data: [DONE]" + ending + ending
    for chunks in all_splits(stream):
        assert sse_payloads(chunks) == [b"x\ny", DONE_DATA], chunks


def test_a_crlf_cut_between_its_cr_and_lf_ends_one_line() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"data: a\r") == []
    assert splitter.feed(b"\ndata: b\r") == []  # the LF completes the CR: no blank line, no dispatch
    assert splitter.feed(b"\n") == []
    assert splitter.feed(b"\n") == [b"a\nb"]  # a lone LF after a consumed CRLF is a blank line


def test_comments_and_other_fields_are_ignored() -> None:
    assert sse_payloads([b": ping\n\nevent: x\nid: 1\n\n: only comments\n\ndata: kept\n\n"]) == [b"kept"]


def test_data_fields_keep_their_spaces_but_one() -> None:
    assert sse_payloads([b"data:  two spaces\n\ndata:none\n\ndata\n\n"]) == [b" two spaces", b"none", b""]


def test_a_stream_that_ends_without_its_blank_line_still_gives_its_last_event() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"data: a\n\ndata: [DONE]") == [b"a"]
    assert splitter.end() == [DONE_DATA]
    assert SseSplitter().end() == []


def test_an_event_or_line_beyond_the_limit_is_refused() -> None:
    with pytest.raises(StreamFormatError, match="line longer than 64 bytes"):
        splitter = SseSplitter(max_event_bytes=64)
        for _ in range(10):
            splitter.feed(b"data: " + b"x" * 10)  # no line end, ever
    with pytest.raises(StreamFormatError, match="event longer than 64 bytes"):
        splitter = SseSplitter(max_event_bytes=64)
        for _ in range(10):
            splitter.feed(b"data: " + b"x" * 10 + b"\n")  # lines, but no blank line
    splitter = SseSplitter(max_event_bytes=64)
    for _ in range(10):
        assert splitter.feed(b"data: " + b"x" * 40 + b"\n\n") == [b"x" * 40]  # many events: fine


def test_done_error_and_malformed_chunks() -> None:
    assert decode_chunk(b'{"choices": []}') == {"choices": []}
    assert error_of(decode_chunk(b'{"error": {"message": "boom", "code": 500}}')) == {"message": "boom", "code": 500}
    assert error_of(decode_chunk(b'{"error": "boom"}')) == {"message": "boom"}
    assert error_of({"choices": []}) is None
    for payload in (b"not json", b"[1, 2]", b"42", b'{"a": "\xff"}'):
        with pytest.raises(StreamFormatError, match="malformed stream chunk"):
            decode_chunk(payload)
    assert ends_with_done(b"data: [DONE]\n\n") and ends_with_done(b'data: {}\n\ndata:[DONE]\r\n\r\n')
    assert not ends_with_done(b'data: {"content": "[DONE]"}\n\n')


NDJSON = b'{"a": 1}\n\n  {"b": 2}  \r\n{"done": true}'


def ndjson_lines(chunks: list[bytes]) -> list[bytes]:
    splitter = NdjsonSplitter()
    return [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.end()


def test_ndjson_lines_whatever_the_chunks() -> None:
    for chunks in all_splits(NDJSON):
        assert ndjson_lines(chunks) == [b'{"a": 1}', b'{"b": 2}', b'{"done": true}'], chunks


def test_an_ndjson_line_beyond_the_limit_is_refused() -> None:
    splitter = NdjsonSplitter(max_line_bytes=16)
    assert splitter.feed(b"x" * 16) == []
    with pytest.raises(StreamFormatError, match="line longer than 16 bytes"):
        splitter.feed(b"x")
