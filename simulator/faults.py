"""Faults the simulator can inject, chosen by configuration or by the requested model name.

Like TensorZero's dummy provider, a request whose `model` is a fault name (`error-500`, `slow`, …)
gets that fault, and the simulator answers as if the model existed. `SimulatorConfig.fault` applies
one fault to every request whose model is not itself a fault name.

| name                  | behaviour                                                                   |
|-----------------------|-----------------------------------------------------------------------------|
| `error-500`           | 500 with the server's error body                                            |
| `error-429`           | 429 with the server's error body                                            |
| `error-400`           | 400 with the server's error body                                            |
| `error-503`           | 503 "queue full" (vLLM: "…try again later or on a different instance")      |
| `slow`                | inter-token latency `SimulatorConfig.slow_itl_s` (0.2 s by default)         |
| `stall-after-N`       | N content chunks, then hang until the client disconnects (non-stream: hang) |
| `drop-mid-stream`     | 3 content chunks, then the connection is closed abruptly (no terminator)    |
| `mid-stream-error`    | 2 content chunks, then an error event in the stream (status stays 200)      |
| `no-done`             | the whole stream, but no terminator (vLLM: no `[DONE]`; Ollama: no `done`)  |
| `done-without-finish` | 3 content chunks, then a clean end without any `finish_reason` (below)      |
| `never-answer`        | no status line nor headers, ever; waits until the client disconnects        |
| `garbage-sse`         | 200 with lines that are not JSON (SSE data lines, or NDJSON lines)          |
| `tool-call`           | not a failure: a request offering tools gets a call of the first one        |

`done-without-finish` is how llama-cpp-python's server ends a request it interrupts for a newer one:
vLLM streams get `[DONE]` right after the content chunks (no finish chunk, no usage chunk); Ollama
streams simply end, with no `done` line. A non-streaming request under it gets the whole answer.

`tool-call` stands for a model that decides to call a tool (`tool_choice` "auto"); see
`simulator.tool_calls` for the call it makes and the other ways a request asks for one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    """The kinds of fault; `STALL` takes a chunk count in its name (`stall-after-3`)."""

    ERROR_500 = "error-500"
    ERROR_429 = "error-429"
    ERROR_400 = "error-400"
    ERROR_503 = "error-503"
    SLOW = "slow"
    STALL = "stall-after"
    DROP_MID_STREAM = "drop-mid-stream"
    MID_STREAM_ERROR = "mid-stream-error"
    NO_DONE = "no-done"
    DONE_WITHOUT_FINISH = "done-without-finish"
    NEVER_ANSWER = "never-answer"
    GARBAGE_SSE = "garbage-sse"
    TOOL_CALL = "tool-call"


WHOLE_REPLY_KINDS = frozenset({FaultKind.SLOW, FaultKind.NO_DONE, FaultKind.DONE_WITHOUT_FINISH, FaultKind.TOOL_CALL})
"""Faults under which a non-streamed request still gets its whole answer."""

DROP_AFTER_CHUNKS = 3
"""Content chunks sent before `drop-mid-stream` closes the connection."""

ERROR_AFTER_CHUNKS = 2
"""Content chunks sent before `mid-stream-error` sends its error event."""

CUT_AFTER_CHUNKS = 3
"""Content chunks sent before `done-without-finish` ends the stream."""

ERROR_STATUS = {
    FaultKind.ERROR_500: 500,
    FaultKind.ERROR_429: 429,
    FaultKind.ERROR_400: 400,
    FaultKind.ERROR_503: 503,
}
"""HTTP status of each error fault."""

FAULT_NAMES: tuple[str, ...] = (
    "error-500",
    "error-429",
    "error-400",
    "error-503",
    "slow",
    "stall-after-3",
    "drop-mid-stream",
    "mid-stream-error",
    "no-done",
    "done-without-finish",
    "never-answer",
    "garbage-sse",
    "tool-call",
)
"""Every fault name (`stall-after-N` accepts any N >= 0; 3 is the usual one)."""

_STALL_NAME = re.compile(r"stall-after-(\d+)")


@dataclass(frozen=True)
class Fault:
    """One fault to inject into a request."""

    kind: FaultKind
    stall_after_chunks: int = 0
    """For `STALL`: content chunks sent before hanging."""

    @property
    def name(self) -> str:
        if self.kind is FaultKind.STALL:
            return f"stall-after-{self.stall_after_chunks}"
        return self.kind.value

    @property
    def error_status(self) -> int | None:
        """The HTTP status for an error fault, None for the others."""
        return ERROR_STATUS.get(self.kind)


def parse_fault(name: str) -> Fault:
    """The fault called `name`; ValueError if there is none."""
    fault = fault_named(name)
    if fault is None:
        raise ValueError(f"unknown fault {name!r}; known faults: {', '.join(FAULT_NAMES)}")
    return fault


def fault_named(name: str) -> Fault | None:
    """The fault called `name` (an Ollama `:latest` tag is ignored), or None if it names none."""
    name = name.removesuffix(":latest")
    stall = _STALL_NAME.fullmatch(name)
    if stall is not None:
        return Fault(FaultKind.STALL, stall_after_chunks=int(stall.group(1)))
    if name == FaultKind.STALL.value:
        return None
    try:
        return Fault(FaultKind(name))
    except ValueError:
        return None


def resolve_fault(configured: str | None, model: str | None) -> Fault | None:
    """The fault for a request: the model's name if it is a fault name, else the configured one."""
    if model is not None:
        by_model = fault_named(model)
        if by_model is not None:
            return by_model
    if configured is not None:
        return parse_fault(configured)
    return None
