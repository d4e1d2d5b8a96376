"""The conversation of a Responses or Messages request as chat messages, the way vLLM and Ollama see it.

Both servers turn these surfaces into a chat conversation before generating: Responses' `instructions`
become a system message and its `input` items messages (`function_call` an assistant turn,
`function_call_output` a `tool` turn); Messages' `system` a system message, its text blocks the
message's content, `tool_use` blocks an assistant turn, `tool_result` blocks `tool` turns. The
simulator does the same, so a request's prompt text, tokens and KV-cache blocks are the same whichever
surface it came through (a tool call in the history adds no text, as on chat, where
`simulator.text.serialize_messages` reads only `content`). Malformed shapes are the caller's to reject;
here they are skipped.
"""

from __future__ import annotations

from typing import Any

from simulator.text import content_text

Conversation = list[dict[str, Any]]


def is_tool_answer(messages: Conversation) -> bool:
    """Whether the conversation's last turn carries tool results (chat's `role: tool`)."""
    return bool(messages) and messages[-1].get("role") == "tool"


def responses_conversation(body: dict[str, Any]) -> Conversation:
    """The chat messages of a Responses request: `instructions`, then the `input` items."""
    messages: Conversation = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            messages.append(_responses_item(item))
    return messages


def _responses_item(item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("type", "message")
    if kind == "function_call":
        return {"role": "assistant", "content": ""}
    if kind == "function_call_output":
        output = item.get("output")
        return {"role": "tool", "content": output if isinstance(output, str) else content_text(output)}
    return {"role": str(item.get("role", "user")), "content": item.get("content")}


def messages_conversation(body: dict[str, Any]) -> Conversation:
    """The chat messages of a Messages request: `system`, then each message's blocks."""
    messages: Conversation = []
    system = body.get("system")
    system_text = system if isinstance(system, str) else content_text(system)
    if system_text:
        messages.append({"role": "system", "content": system_text})
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            messages.extend(_anthropic_message(message))
    return messages


def _anthropic_message(message: dict[str, Any]) -> Conversation:
    """One Messages turn as chat messages: its tool results first (as `tool` turns), then its text."""
    role = str(message.get("role", "user"))
    content = message.get("content")
    if not isinstance(content, list):
        return [{"role": role, "content": content_text(content)}]
    results: Conversation = []
    texts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "tool_result":
            result = block.get("content")
            results.append({"role": "tool", "content": result if isinstance(result, str) else content_text(result)})
        elif isinstance(block.get("text"), str):
            texts.append(block["text"])
    if texts or not results:
        results.append({"role": role, "content": "".join(texts)})
    return results
