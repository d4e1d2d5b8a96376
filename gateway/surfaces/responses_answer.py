"""The Response object of the OpenAI Responses API, made from a chat completion: its head (what the
request set, echoed as OpenAI echoes it), its output items (a `message` with `output_text`, one
`function_call` per tool call), its status (`incomplete` when the answer was cut at
`max_output_tokens`) and its usage. The stream encoder (`responses_stream`) builds the same objects
event by event; both give the answer back as chat messages, which a stored response keeps for
`previous_response_id`.
"""

from __future__ import annotations

import os
import time
from typing import Any

Body = dict[str, Any]


def new_id(prefix: str) -> str:
    """An id as OpenAI's look (`resp_…`, `msg_…`, `fc_…`): the prefix and 48 hex digits. The same
    randomness as `secrets.token_hex` (the OS's), without its two layers of calls: two ids a request."""
    return prefix + "_" + os.urandom(24).hex()


def response_head(body: Body) -> Body:
    """The Response object of the request `body`, before any output: status `in_progress`."""
    return {"id": new_id("resp"), "object": "response", "created_at": int(time.time()), "status": "in_progress",
            "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {}, "model": body.get("model") or "", "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None}, "store": body.get("store") is not False,
            "temperature": body.get("temperature"), "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
            "top_p": body.get("top_p"), "truncation": "disabled", "usage": None, "user": body.get("user")}


def message_item(item_id: str, text: str, status: str = "completed") -> Body:
    content = [] if status == "in_progress" else [output_text(text)]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def output_text(text: str) -> Body:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> Body:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def usage_of(usage: object) -> Body | None:
    """A chat completion's usage in the Responses shape (None when the worker sent none)."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached or 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.get("total_tokens") or prompt + completion}


def finished(head: Body, output: list[Body], finish_reason: object, usage: object, model: object) -> Body:
    """The whole Response: `completed`, or `incomplete` when the answer was cut at its token limit."""
    response = {**head, "output": output, "usage": usage_of(usage)}
    if not response["model"] and isinstance(model, str):
        response["model"] = model
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        response["status"] = "completed"
    return response


def response_of_answer(answer: Body, head: Body) -> Body:
    """The Response of a whole chat completion (its first choice)."""
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    assert isinstance(message, dict)
    output: list[Body] = []
    content = message.get("content")
    if isinstance(content, str) and (content or not message.get("tool_calls")):
        output.append(message_item(new_id("msg"), content))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(function_call_item(new_id("fc"), call.get("id") or new_id("call"), function.get("name", ""),
                                         function.get("arguments", "")))
    return finished(head, output, choice.get("finish_reason"), answer.get("usage"), answer.get("model"))


def answer_message(output: list[Body]) -> Body:
    """A Response's output as the assistant's chat message (its text, and its tool calls); other items (a
    native worker's `reasoning`) and parts without text (a `refusal`) are not part of it."""
    texts = [part["text"] for item in output if item.get("type") == "message"
             for part in item.get("content") or () if isinstance(part.get("text"), str)]
    calls = [{"id": item.get("call_id", ""), "type": "function",
              "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")}}
             for item in output if item.get("type") == "function_call"]
    message: Body = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message
