"""The head of a `multipart/form-data` body, read as it arrives: its parts up to the end of the `model`
field's value, and where that value lies in the bytes read, so the gateway can choose a worker and
rewrite the model name without holding the rest of the body (the audio) first.

Only what the head needs of RFC 7578 is read: each part's `Content-Disposition` (its `name`, and whether
it has a `filename`); a text field's value is the bytes between its headers' blank line and the CRLF
before the next delimiter. A file part before `model` is read through like any other (its bytes stay in
the buffer: the caller bounds how far it reads). Pure bookkeeping, no I/O: `feed` takes the chunks.
"""

from __future__ import annotations

import re

from gateway.errors import InvalidRequest

_DISPOSITION = re.compile(rb"^content-disposition\s*:(.*)$", re.IGNORECASE | re.MULTILINE)
_NAME = re.compile(rb'(?:^|;)\s*name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))', re.IGNORECASE)
_FILENAME = re.compile(rb"(?:^|;)\s*filename\*?\s*=", re.IGNORECASE)
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)

_BEFORE_FIRST, _HEADERS, _VALUE, _AFTER_DELIMITER, _DONE = range(5)


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a `multipart/form-data` content type; `InvalidRequest` for any other body."""
    if content_type is None or not content_type.lower().lstrip().startswith("multipart/form-data"):
        raise InvalidRequest("The request body must be multipart/form-data (fields `file` and `model`).",
                             code="invalid_content_type")
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise InvalidRequest("The multipart/form-data content type has no boundary.", code="invalid_content_type")
    return (found.group(1) or found.group(2)).encode("latin-1")


class MultipartHead:
    """Feed it a body's chunks in order until `feed` says the `model` field is whole."""

    def __init__(self, boundary: bytes) -> None:
        self.buffer = bytearray()
        """Every byte fed so far."""
        self.fields: dict[str, str] = {}
        """The text fields whose values are whole, by name (a file part's content is not kept here)."""
        self.model_span: tuple[int, int] | None = None
        """Where the `model` field's value lies in `buffer` (start, end), once it is whole."""
        self.ended = False
        """The closing delimiter was read: the body holds no more parts."""
        self._delimiter = b"--" + boundary
        self._next_delimiter = b"\r\n" + self._delimiter
        self._state = _BEFORE_FIRST
        self._position = 0
        """Where reading resumes in `buffer` (a value's start, while in it)."""
        self._scan_from = 0
        """Where the search for the end of the current value resumes (bytes before it were searched)."""
        self._part: tuple[str, bool] = ("", False)
        """The current part's name, and whether it is a file."""

    def feed(self, chunk: bytes) -> bool:
        """Add the body's next bytes; True once the `model` value is whole (read no further)."""
        self.buffer += chunk
        while self._state != _DONE and self._step():
            pass
        return self.model_span is not None

    def _step(self) -> bool:
        """Read one more element if its bytes are all there; False: wait for more."""
        if self._state == _BEFORE_FIRST:
            return self._first_delimiter()
        if self._state == _AFTER_DELIMITER:
            return self._after_delimiter()
        if self._state == _HEADERS:
            return self._headers()
        return self._value()

    def _first_delimiter(self) -> bool:
        found = self.buffer.find(self._delimiter)
        if found < 0:
            return False
        self._position = found + len(self._delimiter)
        self._state = _AFTER_DELIMITER
        return True

    def _after_delimiter(self) -> bool:
        """After a delimiter: `--` closes the body; else the rest of the line (transport padding) is skipped."""
        buffer, start = self.buffer, self._position
        if len(buffer) - start < 2:
            return False
        if buffer[start:start + 2] == b"--":
            self.ended = True
            self._state = _DONE
            return False
        line_end = buffer.find(b"\r\n", start)
        if line_end < 0:
            return False
        self._position = line_end + 2
        self._state = _HEADERS
        return True

    def _headers(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n", self._position)
        if end < 0:
            return False
        self._part = _disposition(bytes(self.buffer[self._position:end]))
        self._position = self._scan_from = end + 4
        self._state = _VALUE
        return True

    def _value(self) -> bool:
        buffer, marker = self.buffer, self._next_delimiter
        end = buffer.find(marker, self._scan_from)
        if end < 0:
            self._scan_from = max(self._position, len(buffer) - len(marker) + 1)
            return False
        name, is_file = self._part
        start = self._position
        if not is_file:
            self.fields[name] = buffer[start:end].decode("utf-8", "replace")
        self._position = end + len(marker)
        self._state = _AFTER_DELIMITER
        if name == "model" and not is_file:
            self.model_span = (start, end)
            self._state = _DONE
            return False
        return True


def _disposition(headers: bytes) -> tuple[str, bool]:
    """A part's field name (empty when it has none) and whether it is a file, from its headers."""
    found = _DISPOSITION.search(headers)
    if found is None:
        return "", False
    value = found.group(1).strip()
    name = _NAME.search(value)
    raw = (name.group(1) if name.group(1) is not None else name.group(2)) if name is not None else b""
    return raw.replace(b'\\"', b'"').decode("utf-8", "replace"), _FILENAME.search(value) is not None
