"""What the test servers made of several processes share: `with group:` starts them all (stopping
whatever started if one fails) and stops them all on the way out."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ServerGroup:
    """A set of server processes: subclasses start them in `start` and stop every one in `close`
    (which must cope with some never started)."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
