"""What every routing workload is made of: chat requests, how a workload sends them (sessions taken in a
closed loop, an optional burst on top), and the deterministic text they carry. Nothing here starts a
process or opens a socket."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

WORDS = (
    "coach", "goal", "habit", "week", "plan", "focus", "energy", "sleep", "team", "review", "client",
    "progress", "session", "reflect", "values", "purpose", "career", "balance", "stress", "growth",
    "feedback", "listen", "commit", "routine", "morning", "evening", "journal", "metric", "milestone",
    "support", "challenge", "strength", "practice", "question", "answer", "always", "never", "gently",
)  # fmt: skip
TOPICS = ("sleep", "a hard conversation", "my manager", "running", "saving money", "a career change",
          "procrastination", "public speaking", "my morning routine", "a new team")
CHARS_PER_TOKEN = 4
"""The simulator counts 4 characters a token (`simulator/latency.py`)."""


@dataclass(frozen=True)
class ChatRequest:
    group: int
    """The prefix it shares with other requests: its system prompt's group, its conversation, or its own
    index when it shares none (the miss replay and the per-group spread count by it)."""
    messages: list[dict[str, str]]
    user: str | None = None
    """Sent as OpenAI's `user`, the gateway's session-affinity key, when set."""
    phase: str = "steady"
    """`burst` for the requests a burst adds: their TTFT is reported apart."""


@dataclass(frozen=True)
class Workload:
    """One workload's requests and how they are sent. The clients take `sessions` in order, `concurrency`
    at a time (closed loop), and send each session's requests one after the other (a conversation's
    turns: a turn waits for the previous answer). The `burst`, if any, is sent all at once on top of the
    closed loop when session `burst_after` starts."""

    kind: str
    description: str
    """What the requests look like, in a sentence of the report."""
    sessions: list[list[ChatRequest]]
    max_tokens: int = 256
    reply_tokens: tuple[int, int] | None = None
    """The simulators' reply lengths for this workload; None keeps the fleet's."""
    burst: list[ChatRequest] = field(default_factory=list)
    burst_after: int = 0

    def __len__(self) -> int:
        return sum(len(s) for s in self.sessions) + len(self.burst)

    def events(self) -> Iterator[tuple[str, list[tuple[int, ChatRequest]]]]:
        """("session", its numbered requests) in the clients' order, with ("burst", its numbered requests)
        just before session `burst_after`. A request's number is its place in `ordered()`."""
        number = 0

        def numbered(requests: list[ChatRequest]) -> list[tuple[int, ChatRequest]]:
            nonlocal number
            first, number = number, number + len(requests)
            return list(enumerate(requests, start=first))

        for index, session in enumerate(self.sessions):
            if self.burst and index == self.burst_after:
                yield "burst", numbered(self.burst)
            yield "session", numbered(session)
        if self.burst and self.burst_after >= len(self.sessions):
            yield "burst", numbered(self.burst)

    def ordered(self) -> list[ChatRequest]:
        """Every request in the order it is first sent when nothing overlaps (what a ceiling replays)."""
        return [request for _, numbered in self.events() for _, request in numbered]


def words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def filler(head: str, chars: int, rng: random.Random) -> str:
    """`head` followed by seeded sentences, cut to exactly `chars` characters (at least `head`)."""
    text = head
    while len(text) < chars:
        text += words(rng, 6, 14).capitalize() + ". "
    return text[: max(chars, len(head))]


def system_prompt(group: int, chars: int, seed: int) -> str:
    """A deterministic system prompt of exactly `chars` characters, distinct per group from its start."""
    rng = random.Random(f"{seed}:system:{group}")  # noqa: S311 -- a fixed, reproducible text
    return filler(f"You are coach #{group}. Follow the playbook of team {group} below.\n", chars, rng)


def question(index: int, rng: random.Random) -> str:
    """A short user question (about 80-200 characters), distinct per request."""
    return f"Request {index}: how should I approach {rng.choice(TOPICS)} this week? Context: {words(rng, 4, 18)}."


def singles(requests: list[ChatRequest]) -> list[list[ChatRequest]]:
    """Each request a session of its own (independent requests)."""
    return [[request] for request in requests]
