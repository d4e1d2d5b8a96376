"""The `input` of an OpenAI Responses request as chat messages, checked as it is carried: each item it
cannot carry is a 400 naming the field (`input[2].content[0].type`), never dropped.

    a string                          one user message
    {"role", "content"} (type message) a message of role user, assistant, system or developer; content a
                                      string or parts: input_text / output_text (text), input_image
                                      (an image_url part; a `file_id` cannot be carried)
    {"type": "function_call"}         an assistant message's tool call (consecutive calls, and a call
                                      after an assistant message, join that message)
    {"type": "function_call_output"}  a `tool` message answering `call_id`

Fields that only identify an item (`id`, `status`, `annotations`, `logprobs`: what a client sends back
when it appends a response's `output` to its next input) are accepted and change nothing.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest, Untranslatable

Message = dict[str, Any]
_ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text"})


def input_messages(value: object) -> list[Message]:
    """The chat messages of `input` (a string, or a non-empty list of items)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _invalid("input", "'input' must be a string or a non-empty array of input items.")
    messages: list[Message] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _invalid(where, f"'{where}' must be an object.", code="invalid_type")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _join_call(messages, _function_call(item, where))
        elif kind == "function_call_output":
            messages.append(_call_output(item, where))
        else:
            raise _untranslatable(f"{where}.type", f"Input items of type '{kind}' cannot be translated for this "
                           "gateway's workers: send message, function_call or function_call_output items.")
    return messages


def _message(item: dict[str, Any], where: str) -> Message:
    role = item.get("role")
    if role not in _ROLES:
        raise _invalid(f"{where}.role", f"'{where}.role' must be one of assistant, developer, system, user.")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _invalid(f"{where}.content", f"'{where}.content' must be a string or an array of content parts.")
    parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts):  # text only: a plain string, as every worker reads it
        return {"role": role, "content": "\n".join(part["text"] for part in parts)}
    if role != "user":
        raise _invalid(f"{where}.content", "Only user messages may carry images.")
    return {"role": role, "content": parts}


def _part(part: object, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _invalid(where, f"'{where}' must be an object.", code="invalid_type")
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        text = part.get("text")
        if not isinstance(text, str):
            raise _invalid(f"{where}.text", f"'{where}.text' must be a string.", code="invalid_type")
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if part.get("file_id") is not None or not isinstance(url, str):
            raise _untranslatable(f"{where}.image_url", "Images must be given by `image_url` (a URL or a data URL); "
                           "`file_id` cannot be translated for this gateway's workers.")
        image: dict[str, Any] = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise _untranslatable(f"{where}.type", f"Content parts of type '{kind}' cannot be translated for this gateway's "
                   "workers: send input_text, output_text or input_image.")


def _function_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    for field, value in (("call_id", call_id), ("name", name), ("arguments", arguments)):
        if not isinstance(value, str):
            raise _invalid(f"{where}.{field}", f"'{where}.{field}' must be a string.",
                           code="missing_required_parameter" if value is None else "invalid_type")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _join_call(messages: list[Message], call: dict[str, Any]) -> None:
    """The call joins the assistant message just before it (its text, or its other calls), as one chat
    turn carries them; else it starts an assistant message of its own."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str | None):
        last.setdefault("tool_calls", []).append(call)
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _call_output(item: dict[str, Any], where: str) -> Message:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str):
        raise _invalid(f"{where}.call_id", f"'{where}.call_id' must be a string.")
    if isinstance(output, list):
        texts = [_part(part, f"{where}.output[{j}]") for j, part in enumerate(output)]
        if any(part["type"] != "text" for part in texts):
            raise _invalid(f"{where}.output", "A function call's output can only be text for this gateway's workers.")
        output = "\n".join(part["text"] for part in texts)
    if not isinstance(output, str):
        raise _invalid(f"{where}.output", f"'{where}.output' must be a string or an array of text parts.")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _invalid(param: str, message: str, *, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _untranslatable(param: str, message: str) -> Untranslatable:
    return Untranslatable(message, param=param, code="invalid_value")
