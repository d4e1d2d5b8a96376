"""Deterministic text for the simulator: prompt serialization, token counting, replies, embeddings.

Token counting is by characters, as llm-d's approximate prefix index assumes: a text of n characters
is ceil(n / 4) tokens. A chat prompt is first serialized to one text, every message in order as
`<|role|>\\n{content}\\n` (text parts of multi-part contents joined, other parts ignored), so the
prompt's tokens, its KV-cache blocks and its reply all derive from that one string.

Replies are words from a fixed vocabulary drawn with `random.Random` seeded from a BLAKE2 hash of
(seed, model, prompt): the same request always gets the same reply, on any machine. Each word is one
token; every word but the first carries its leading space, so the pieces concatenate into the reply.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import struct
from collections.abc import Sequence
from typing import Any

CHARS_PER_TOKEN = 4
"""Characters per token in the simulator's token count."""

VOCABULARY: tuple[str, ...] = (
    "the", "model", "answer", "token", "cache", "prefix", "request", "worker", "latency", "stream",
    "gateway", "routing", "queue", "batch", "prompt", "reply", "block", "memory", "kernel", "tensor",
    "layer", "attention", "context", "window", "signal", "result", "value", "simple", "quick", "steady",
    "careful", "useful", "good", "clear", "small", "large", "fast", "warm", "cold", "open",
    "and", "of", "to", "in", "is", "it", "that", "for", "on", "with",
    "as", "by", "at", "from", "this", "we", "can", "will", "be", "not",
    "every", "each", "more", "less",
)  # fmt: skip
"""Words replies are made of (64, so each is equally likely)."""

_PIECE = re.compile(r"\s*\S+|\s+$")


def count_tokens(text: str) -> int:
    """Tokens in `text`: ceil(characters / CHARS_PER_TOKEN)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def token_ids(text: str) -> list[int]:
    """The ids of `text`'s tokens, a token per CHARS_PER_TOKEN characters: the little-endian 32-bit BLAKE2b
    of its characters. What the simulator's KV events carry (`BlockStored.token_ids`), and what the
    gateway's `routing.prompt_tokens.SimulatorTokens` computes from a request, so both cut the same blocks."""
    return [int.from_bytes(hashlib.blake2b(text[i : i + CHARS_PER_TOKEN].encode(), digest_size=4).digest(), "little")
            for i in range(0, len(text), CHARS_PER_TOKEN)]  # fmt: skip


def content_text(content: Any) -> str:
    """The text of a message's `content`: a string, or the `text` of its parts (OpenAI or Ollama)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def serialize_messages(messages: Sequence[Any]) -> str:
    """One text for a chat conversation: `<|role|>\\n{content}\\n` per message, in order."""
    pieces: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role", "user")
        pieces.append(f"<|{role}|>\n{content_text(message.get('content'))}\n")
    return "".join(pieces)


def serialize_tools(tools: Any) -> str:
    """The tools a chat request offers, as a chat template puts them in the prompt: `<|tools|>\n{JSON}\n`
    (compact JSON, keys in the request's order), or nothing without tools."""
    if not isinstance(tools, list) or not tools:
        return ""
    return f"<|tools|>\n{json.dumps(tools, separators=(',', ':'))}\n"


def _rng(*parts: str) -> random.Random:
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def split_pieces(text: str) -> list[str]:
    """`text` cut into tokens for streaming: words with their leading whitespace (they rejoin to `text`)."""
    return _PIECE.findall(text)


class ReplyWriter:
    """Writes the reply to a prompt, deterministically from the simulator's seed."""

    def __init__(self, seed: int, reply_tokens: tuple[int, int], response_text: str | None) -> None:
        self._seed = seed
        self._reply_tokens = reply_tokens
        self._fixed_pieces = split_pieces(response_text) if response_text is not None else None

    def pieces(self, model: str, prompt: str) -> list[str]:
        """The whole reply (before any max_tokens cut), one token a piece."""
        if self._fixed_pieces is not None:
            return list(self._fixed_pieces)
        rng = _rng(str(self._seed), model, prompt)
        length = rng.randint(*self._reply_tokens)
        words = [rng.choice(VOCABULARY) for _ in range(length)]
        if not words:
            return []
        words[0] = words[0].capitalize()
        words[-1] += "."
        return [words[0], *(" " + word for word in words[1:])]


def embedding(seed: int, model: str, text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for `text`."""
    rng = _rng(str(seed), model, "embedding", text)
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def pack_float32(vector: Sequence[float]) -> bytes:
    """`vector` as little-endian float32 bytes (what `encoding_format: base64` encodes)."""
    return struct.pack(f"<{len(vector)}f", *vector)
