"""Multi-turn conversations: simulated users, each holding a conversation of several turns whose prompt
grows (a turn's prompt is the previous turn's, then that turn's answer, then a new question), so each
conversation is a prefix of its own that grows behind a short shared system prompt.

The answers in the history are fixed, seeded texts, not what the worker replied: the simulators'
replies depend on the worker that wrote them, and every policy must get the same prompts. (The
simulator, like this workload, caches prompt blocks only, so nothing is lost by it.) `conversations`
sends each conversation's id as OpenAI's `user`, the gateway's session-affinity key;
`conversations-anonymous` sends the same requests without it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from benchmarks.routing.workloads.requests import TOPICS, ChatRequest, Workload, filler, system_prompt, words


@dataclass(frozen=True)
class ConversationSpec:
    system_prompts: int = 4
    """A few products' assistants: conversation k starts with system prompt k mod 4."""
    system_chars: int = 1_200
    turns: tuple[int, int] = (4, 8)
    question_chars: tuple[int, int] = (200, 600)
    answer_chars: tuple[int, int] = (400, 1_200)
    """100-300 tokens of answer kept in the history (the simulators' own replies stay 8-24 tokens)."""


def conversation(number: int, seed: int, spec: ConversationSpec, user: str | None) -> list[ChatRequest]:
    """Conversation `number`'s turns: turn t's messages are turn t-1's, its answer and a new question."""
    rng = random.Random(f"{seed}:conversation:{number}")  # noqa: S311 -- a fixed, reproducible text
    group = 1_000_000 + number % spec.system_prompts
    messages = [{"role": "system", "content": system_prompt(group, spec.system_chars, seed)}]
    turns: list[ChatRequest] = []
    for turn in range(rng.randint(*spec.turns)):
        if turn:
            answer = filler(f"Answer {turn} to user {number}: ", rng.randint(*spec.answer_chars), rng)
            messages = [*messages, {"role": "assistant", "content": answer}]
        head = f"User {number}, turn {turn + 1}: about {rng.choice(TOPICS)}, {words(rng, 3, 8)}. "
        messages = [*messages, {"role": "user", "content": filler(head, rng.randint(*spec.question_chars), rng)}]
        turns.append(ChatRequest(number, messages, user=user))
    return turns


def conversations(requests: int, seed: int, *, with_user: bool, spec: ConversationSpec | None = None) -> Workload:
    """Whole conversations, in order, until `requests` turns (the last one cut short to fit)."""
    spec = spec or ConversationSpec()
    sessions: list[list[ChatRequest]] = []
    total = 0
    while total < requests:
        number = len(sessions)
        turns = conversation(number, seed, spec, f"user-{number}" if with_user else None)[: requests - total]
        sessions.append(turns)
        total += len(turns)
    kind = "conversations" if with_user else "conversations-anonymous"
    who = "each with its `user` id" if with_user else "no `user` or `session_id`"
    low, high = spec.turns
    description = (f"{len(sessions)} conversations of {low}-{high} turns ({who}), one at a time per client; a turn "
                   f"repeats the conversation so far (one of {spec.system_prompts} system prompts of "
                   f"{spec.system_chars:,} characters, {spec.question_chars[0]}-{spec.question_chars[1]}-character "
                   f"questions, {spec.answer_chars[0]:,}-{spec.answer_chars[1]:,}-character answers) + a new question")
    return Workload(kind, description, sessions)
