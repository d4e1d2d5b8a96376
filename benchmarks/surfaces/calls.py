"""What the surfaces suite sends and how it reads the answers: one short question asked as a chat
completion, as a Responses call (with `store: false`, and stored) and as a Messages call, each plain or
streamed; which stream events carry the reply's text on each surface, and which one ends the stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from benchmarks.load import sse

MODEL = "bench"
"""The catalog model (the harness's catalog: `bench` on the simulator's `bench-upstream`)."""
MAX_TOKENS = 64
"""Above the simulator's 32-token replies, so every reply ends with `stop` (a Response `completed`,
a message `end_turn`), not at the limit."""
QUESTION = "Say ok"


@dataclass(frozen=True, slots=True)
class Surface:
    """One way of asking the question: where, with what body, and what its stream's events look like."""

    key: str
    label: str
    path: str
    content_event: str
    """The stream event that carries text: `type` of a Responses or Messages event; `chunk` for chat."""
    end_events: tuple[str, ...]
    """Events that end the stream well (chat: `[DONE]`)."""

    def body(self, stream: bool) -> dict[str, Any]:
        question = [{"role": "user", "content": QUESTION}]
        if self.key == "chat":
            extra = {"stream_options": {"include_usage": True}} if stream else {}
            return {"model": MODEL, "messages": question, "max_tokens": MAX_TOKENS, "stream": stream, **extra}
        if self.key.startswith("responses"):
            store = self.key == "responses-store"
            return {"model": MODEL, "input": QUESTION, "max_output_tokens": MAX_TOKENS, "store": store,
                    "stream": stream}  # fmt: skip
        return {"model": MODEL, "messages": question, "max_tokens": MAX_TOKENS, "stream": stream}

    def encoded(self, stream: bool) -> bytes:
        return msgspec.json.encode(self.body(stream))

    @property
    def translated(self) -> bool:
        return self.key != "chat"


CHAT = Surface("chat", "chat completions", "/v1/chat/completions", "chunk", ("[DONE]",))
RESPONSES = Surface(
    "responses", "Responses (store: false)", "/v1/responses", "response.output_text.delta", ("response.completed",)
)
RESPONSES_STORED = Surface(
    "responses-store", "Responses (stored)", "/v1/responses", "response.output_text.delta", ("response.completed",)
)
MESSAGES = Surface("messages", "Messages", "/v1/messages", "content_block_delta", ("message_stop",))
SURFACES = (CHAT, RESPONSES, RESPONSES_STORED, MESSAGES)
SURFACE_KEYS = tuple(s.key for s in SURFACES)
BY_KEY = {s.key: s for s in SURFACES}
FAILURE_EVENTS = ("error", "response.failed", "response.incomplete")


def event_type(surface: Surface, payload: bytes) -> str:
    """What a `data:` payload of `surface`'s stream is: its content event, an end event, a failure, or
    "" for the rest (role chunks, `ping`, `response.created`, ...)."""
    if payload == sse.DONE:
        return "[DONE]"
    chunk = sse.decode(payload)
    if not isinstance(chunk, dict):
        return ""
    if surface.key == "chat":
        if "error" in chunk:
            return "error"
        return "chunk" if sse.content_of(chunk) else ""
    kind = chunk.get("type")
    return kind if isinstance(kind, str) else ""


def answer_problem(surface: Surface, answer: object) -> str:
    """Why a plain answer is not a whole answer of its surface, or ""."""
    if not isinstance(answer, dict):
        return "not a JSON object"
    if surface.key == "chat":
        return "" if answer.get("choices") else "no choices"
    if surface.key.startswith("responses"):
        return "" if answer.get("status") == "completed" else f"status {answer.get('status')!r}"
    return "" if answer.get("type") == "message" and answer.get("content") else "not a message with content"
