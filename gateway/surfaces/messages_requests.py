"""An Anthropic Messages request, checked (`messages_checks`), as the chat completions request every
worker is sent (native Messages pass-through to workers that speak it comes later).

    system, system messages   one system message first: `system`, then the text of every message of
                              role `system` (Claude Code sends some among the turns), joined by blank
                              lines (chat templates refuse a system turn among the others)
    text blocks               the message's content: a string when all text, else OpenAI content parts
    image blocks              `image_url` parts (a `data:` URL for base64 sources)
    tool_use (assistant)      `tool_calls`, the arguments the JSON text of `input`
    tool_result (user)        `role: tool` messages, in order, before the rest of that user turn;
                              `is_error` prefixes the text with "Error: " (chat has no such flag);
                              their images open the user message that follows (chat's tool
                              messages hold text only)
    thinking blocks (past)    left out, as Anthropic leaves them out of the context
    tools, tool_choice        function tools (`parameters` = `input_schema`, `strict`); auto, required, a named
                              function, none; `disable_parallel_tool_use` → `parallel_tool_calls: false`
    stop_sequences            `stop`
    temperature, top_p, top_k as they are (vLLM and llama.cpp read `top_k`)
    metadata.user_id          `user` (session affinity keys on it)
    output_config.format      `response_format` of type `json_schema` (named "output")
    output_config.effort      `reasoning_effort` (xhigh and max: high, chat's highest)
    stream                    `stream`, with `stream_options.include_usage` (the usage ends the stream)
"""

from __future__ import annotations

from typing import Any

import msgspec

Body = dict[str, Any]
_encode = msgspec.json.Encoder().encode

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
_EFFORT = {"xhigh": "high", "max": "high"}
_COPIED = ("model", "max_tokens", "temperature", "top_p", "top_k")


def messages_to_chat(body: Body) -> Body:
    """The chat completions body for the checked Messages `body`."""
    chat: Body = {name: body[name] for name in _COPIED if body.get(name) is not None}
    messages: list[Body] = []
    system = [_text(body["system"])] if body.get("system") else []
    system += [_text(m["content"]) for m in body["messages"] if m["role"] == "system"]
    if system:  # one system message first: chat templates refuse a system turn among the others
        messages.append({"role": "system", "content": "\n\n".join(system)})
    for message in body["messages"]:
        if message["role"] == "user":
            messages += _user_turn(message["content"])
        elif message["role"] == "assistant":
            messages.append(_assistant_turn(message["content"]))
    chat["messages"] = messages
    if tools := body.get("tools"):
        chat["tools"] = [_function_tool(tool) for tool in tools]
    if choice := body.get("tool_choice"):
        chat["tool_choice"] = _TOOL_CHOICE.get(choice["type"]) or \
            {"type": "function", "function": {"name": choice["name"]}}
        if choice.get("disable_parallel_tool_use"):
            chat["parallel_tool_calls"] = False
    if stops := body.get("stop_sequences"):
        chat["stop"] = stops
    metadata = body.get("metadata")
    if metadata and metadata.get("user_id"):
        chat["user"] = metadata["user_id"]
    config = body.get("output_config")
    if config and config.get("format"):
        chat["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "output", "schema": config["format"]["schema"]}}
    if config and config.get("effort"):
        chat["reasoning_effort"] = _EFFORT.get(config["effort"], config["effort"])
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _text(content: str | list[Body]) -> str:
    """A system prompt's text: a string, or its text blocks joined."""
    return content if isinstance(content, str) else "\n\n".join(block["text"] for block in content)


def _user_turn(content: str | list[Body]) -> list[Body]:
    """A user message: its tool results as tool messages first, then the rest (if any) as one message,
    the tool results' images first."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    turn, rest = [], []
    for block in content:
        if block["type"] == "tool_result":
            turn.append(_tool_message(block))
            results = block.get("content")
            if isinstance(results, list):
                rest += [part for part in results if part["type"] == "image"]
    rest += [block for block in content if block["type"] != "tool_result"]
    if rest or not turn:
        turn.append({"role": "user", "content": _content(rest)})
    return turn


def _content(blocks: list[Body]) -> str | list[Body]:
    """Text and image blocks as chat content: one string when all are text, else content parts."""
    if all(block["type"] == "text" for block in blocks):
        return "\n".join(block["text"] for block in blocks)
    return [_part(block) for block in blocks]


def _part(block: Body) -> Body:
    if block["type"] == "text":
        return {"type": "text", "text": block["text"]}
    source = block["source"]
    url = source["url"] if source["type"] == "url" else f"data:{source['media_type']};base64,{source['data']}"
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_message(block: Body) -> Body:
    content = block.get("content")
    text = content if isinstance(content, str) else \
        "\n".join(part["text"] for part in content or () if part["type"] == "text")
    if block.get("is_error"):
        text = "Error: " + text
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _assistant_turn(content: str | list[Body]) -> Body:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = "\n".join(block["text"] for block in content if block["type"] == "text")
    calls = [{"id": block["id"], "type": "function",
              "function": {"name": block["name"], "arguments": _encode(block["input"]).decode()}}
             for block in content if block["type"] == "tool_use"]
    message: Body = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _function_tool(tool: Body) -> Body:
    function: Body = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}
