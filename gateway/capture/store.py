"""The append-only capture store: JSONL files in one directory, rotated by size, capped in total.

Files are named `capture-<UTC time of creation>-<pid>.jsonl`, so names sort by age and several
server processes (`GATEWAY_WORKERS`) sharing the directory never write to the same file. A process
never appends to a file it did not create. Each line is one JSON object, an `interaction` or a
`feedback` record (see `docs/capture.md`).

Rotation: a batch that would take the current file past `file_bytes` goes to a new file (a single
record larger than that gets a file of its own). Cap: when a file is closed, the oldest files are
deleted until the closed files and a full next file fit in `max_bytes`; with one writer the directory
never holds more than `max_bytes`. With several processes the cap is enforced by each of them over
the whole directory, so it holds up to one open file per process more, and a process may delete
another's oldest file, never its own open one.

Everything here is blocking file I/O: the gateway calls it from a thread (`asyncio.to_thread`), the
CLI calls it directly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

PREFIX = "capture-"
SUFFIX = ".jsonl"
_decode = msgspec.json.Decoder().decode


def capture_files(directory: str | Path) -> list[Path]:
    """The store's files, oldest first (an absent directory has none)."""
    root = Path(directory)
    try:
        names = [entry.name for entry in os.scandir(root)
                 if entry.name.startswith(PREFIX) and entry.name.endswith(SUFFIX) and entry.is_file()]
    except FileNotFoundError:
        return []
    return [root / name for name in sorted(names)]


@dataclass
class ReadStats:
    lines: int = 0
    malformed: int = 0
    """Lines that are not a JSON object (a line cut short by a crash, or a file edited by hand)."""


def read_records(directory: str | Path, stats: ReadStats | None = None, *,
                 containing: bytes | None = None) -> Iterator[dict[str, Any]]:
    """Every record of the store, oldest file first, in the order written. `containing`: only lines
    holding these bytes are decoded (a cheap pre-filter; check the records). Files deleted meanwhile
    (by the size cap) are skipped."""
    stats = stats if stats is not None else ReadStats()
    for path in capture_files(directory):
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            continue
        with handle:
            for line in handle:
                if not line.strip() or (containing is not None and containing not in line):
                    continue
                stats.lines += 1
                try:
                    record = _decode(line)
                except msgspec.DecodeError:
                    stats.malformed += 1
                    continue
                if isinstance(record, dict):
                    yield record
                else:
                    stats.malformed += 1


def find_interaction(directory: str | Path, request_id: str, tenant: str) -> bool:
    """Whether the store holds an interaction `request_id` of `tenant`, newest files first. Lines are
    matched as bytes first, so only candidate lines are decoded."""
    needle = b'"request_id":' + msgspec.json.encode(request_id)
    for path in reversed(capture_files(directory)):
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            continue
        with handle:
            for line in handle:
                if needle not in line:
                    continue
                try:
                    record = _decode(line)
                except msgspec.DecodeError:
                    continue
                if isinstance(record, dict) and record.get("type") == "interaction" \
                        and record.get("request_id") == request_id and record.get("tenant") == tenant:
                    return True
    return False


class CaptureWriter:
    """Appends encoded lines to the current file, rotating and capping as it goes. Not thread-safe:
    one writer thread at a time (the capture's background task makes sure of that)."""

    def __init__(self, directory: str | Path, *, file_bytes: int, max_bytes: int) -> None:
        if file_bytes <= 0 or max_bytes < file_bytes:
            raise ValueError("need 0 < file_bytes <= max_bytes")
        self.directory = Path(directory)
        self.file_bytes = file_bytes
        self.max_bytes = max_bytes
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._size = 0
        self._files_made = 0

    @property
    def current(self) -> Path | None:
        return self._path

    def write(self, lines: Iterable[bytes]) -> None:
        """Append `lines` (each a JSON object and its newline), as one batch where it fits."""
        batch: list[bytes] = []
        size = 0
        for line in lines:
            if batch and self._size + size + len(line) > self.file_bytes:
                self._append(batch, size)
                batch, size = [], 0
            batch.append(line)
            size += len(line)
        if batch:
            self._append(batch, size)

    def _append(self, batch: list[bytes], size: int) -> None:
        if self._file is None or (self._size > 0 and self._size + size > self.file_bytes):
            self._rotate()
        assert self._file is not None
        self._file.write(b"".join(batch))
        self._file.flush()
        self._size += size

    def _rotate(self) -> None:
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._enforce_cap()
        name = self._new_name()
        self._path = self.directory / name
        self._file = self._path.open("xb")  # never someone else's file
        self._size = 0

    def _new_name(self) -> str:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self._files_made += 1  # files made within the same microsecond still sort in order
        return f"{PREFIX}{stamp}-{os.getpid()}-{self._files_made:06d}{SUFFIX}"

    def _enforce_cap(self) -> None:
        """Delete the oldest files until those left and a full new file fit in `max_bytes`."""
        files = []
        for path in capture_files(self.directory):
            try:
                files.append((path, path.stat().st_size))
            except FileNotFoundError:
                continue
        total = sum(size for _, size in files)
        for path, size in files:
            if total + self.file_bytes <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
