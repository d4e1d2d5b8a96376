"""What the choices of a relayed OpenAI stream carry: generated output, and whether each one finished.

A choice (by `index`; a stream with `n` > 1 interleaves several) is open from its first chunk until a
chunk carries its `finish_reason`. A worker whose stream reaches `[DONE]` while a choice is still open
cut that choice off: llama-cpp-python's server ends a request it interrupts for a newer one that way,
with the role chunk and `[DONE]` only. The relay reports such a stream as an error, never as a whole
answer. Chat chunks (`choices[].delta`) and completions chunks (`choices[].text`) alike.

The tracking rides on the one pass over each chunk's choices that looks for content: no decode, and
no allocation once a choice is known.
"""

from __future__ import annotations

from typing import Any


class ChoiceTracker:
    """The choices one stream has shown so far, and which of them got their `finish_reason`."""

    __slots__ = ("_finished",)

    def __init__(self) -> None:
        self._finished: dict[Any, bool] = {}
        """Each choice's `index` (in the order they appeared): whether its `finish_reason` came."""

    def read(self, chunk: dict[str, Any]) -> bool:
        """Note the choices of one decoded chunk; whether it carries generated output. A chunk whose
        `choices` are not OpenAI's raises `AttributeError` or `TypeError`, as `has_content` does."""
        content = False
        finished = self._finished
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            if choice.get("finish_reason"):
                finished[index] = True
            elif index not in finished:  # a chunk after the finish one does not open it again
                finished[index] = False
            if not content:
                content = _carries_content(choice)
        return content

    def unfinished(self) -> list[Any]:
        """The indexes of the choices still waiting for their `finish_reason`, in order of appearance."""
        return [index for index, done in self._finished.items() if not done]


def cut_message(worker_name: str, unfinished: list[Any]) -> str:
    """What the client is told when the stream ended with `unfinished` choices open."""
    which = f"choice {unfinished[0]}" if len(unfinished) == 1 else "choices " + ", ".join(map(str, unfinished))
    return f"worker {worker_name!r} ended the stream before {which} finished (no finish_reason)"


def has_content(chunk: dict[str, Any]) -> bool:
    """Whether an OpenAI chunk carries generated output (text, reasoning or tool calls)."""
    for choice in chunk.get("choices") or ():  # noqa: SIM110 (a loop: no generator made per chunk)
        if _carries_content(choice):
            return True
    return False


def _carries_content(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta")
    if delta is not None:
        return bool(delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"))
    return bool(choice.get("text"))
