"""A `multipart/form-data` body read as it streams in, as a Whisper server reads an upload: text fields
kept, files only counted (never held). aiohttp's own multipart reader is not used: its part reader warns
(`unread_data() is deprecated`) when the body comes in small pieces, an error under the test suite."""

from __future__ import annotations

import re

_NAME = re.compile(rb'(?:^|;)\s*name="([^"]*)"', re.IGNORECASE | re.MULTILINE)
_FILENAME = re.compile(rb'(?:^|;)\s*filename="([^"]*)"', re.IGNORECASE | re.MULTILINE)

_VALUE, _AFTER_DELIMITER, _HEADERS, _END = range(4)


class StreamedForm:
    """Feed the body's chunks in order; then `fields` holds the text fields (a file: its filename) and
    `file_bytes` the size of the files."""

    def __init__(self, boundary: bytes) -> None:
        self.fields: dict[str, str] = {}
        self.file_bytes = 0
        self._marker = b"\r\n--" + boundary
        self._pending = b"\r\n"  # the first delimiter has no CRLF before it: as if it had
        self._state = _VALUE  # the preamble is read like a value of no part
        self._part: tuple[str, bool] | None = None
        self._value = bytearray()

    @property
    def ended(self) -> bool:
        return self._state == _END

    def feed(self, data: bytes) -> None:
        buffer = self._pending + data
        while self._state != _END:
            rest = self._step(buffer)
            if rest is None:
                return
            buffer = rest
        self._pending = b""

    def _step(self, buffer: bytes) -> bytes | None:
        """Read one element of `buffer`, giving what follows it; None: wait for more (kept as pending)."""
        if self._state == _VALUE:
            found = buffer.find(self._marker)
            if found < 0:
                keep = len(self._marker) - 1
                self._take(buffer[:-keep] if len(buffer) > keep else b"")
                self._pending = buffer[-keep:] if len(buffer) > keep else buffer
                return None
            self._take(buffer[:found])
            self._close_part()
            self._state = _AFTER_DELIMITER
            return buffer[found + len(self._marker):]
        if self._state == _AFTER_DELIMITER:
            if buffer.startswith(b"--"):
                self._state = _END
                return b""
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                self._pending = buffer
                return None
            self._state = _HEADERS
            return buffer[line_end + 2:]
        headers_end = buffer.find(b"\r\n\r\n")
        if headers_end < 0:
            self._pending = buffer
            return None
        headers = buffer[:headers_end]
        name, filename = _NAME.search(headers), _FILENAME.search(headers)
        self._part = (name.group(1).decode() if name else "", filename is not None)
        if filename is not None:
            self.fields[self._part[0]] = filename.group(1).decode()
        self._state = _VALUE
        return buffer[headers_end + 4:]

    def _take(self, data: bytes) -> None:
        if self._part is None:
            return  # the preamble
        if self._part[1]:
            self.file_bytes += len(data)
        else:
            self._value += data

    def _close_part(self) -> None:
        if self._part is not None and not self._part[1]:
            self.fields[self._part[0]] = self._value.decode("utf-8", "replace")
        self._value = bytearray()
