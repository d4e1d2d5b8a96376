"""A request's prompt as the worker's token ids: what the precise prefix scorer looks up.

The scorer can only find a prompt's blocks in a worker's KV events if it cuts the prompt into the
same tokens as the worker: the same chat template (roles, special tokens, the generation prompt) and
the same tokenizer. A `PromptTokenizer` does that for one kind of worker:

- `SimulatorTokens` (catalog `tokenizer: simulator`): the project's simulator. It renders a chat as
  `<|role|>\\n{text}\\n` per message (`simulator.text.serialize_messages`) and counts a token per 4
  characters; its token ids are the 32-bit BLAKE2b of each 4-character piece (`simulator.text.token_ids`).
  Reproduced here, not imported: `routing` stays free of the simulator, and a unit test pins the two.
- a Hugging Face tokenizer and chat template (catalog `tokenizer: <tokenizer.json>`), for vLLM:
  `gateway.workers.hf_tokens`, since it reads files.

A tokenizer returns None for a request it cannot tokenize (no body, another shape): the scorer then
falls back on the approximate index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from routing.snapshot import RequestKey

SIMULATOR_CHARS_PER_TOKEN = 4


class PromptTokenizer(Protocol):
    """Turns a request into the token ids its worker will compute."""

    def token_ids(self, request: RequestKey) -> list[int] | None:
        """The prompt's token ids, or None when this tokenizer cannot tell them."""
        ...


class SimulatorTokens:
    """The simulator's tokens: a token per 4 characters of its serialized prompt (see the module)."""

    def token_ids(self, request: RequestKey) -> list[int] | None:
        text = simulator_prompt(request.body)
        return None if text is None else simulator_token_ids(text)


def simulator_prompt(body: Mapping[str, Any] | None) -> str | None:
    """The text the simulator computes for a chat (`messages`) or completion (`prompt`) body."""
    if body is None:
        return None
    messages = body.get("messages")
    if isinstance(messages, list):
        return "".join(f"<|{m.get('role', 'user')}|>\n{_text(m.get('content'))}\n"
                       for m in messages if isinstance(m, dict))
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return "".join(prompt)
    return None


def simulator_token_ids(text: str) -> list[int]:
    """A token per 4 characters, its id the little-endian 32-bit BLAKE2b of those characters."""
    step = SIMULATOR_CHARS_PER_TOKEN
    return [int.from_bytes(hashlib.blake2b(text[i:i + step].encode(), digest_size=4).digest(), "little")
            for i in range(0, len(text), step)]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content
                       if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""
