"""An OpenAI Responses request as a chat completions request, checked as it is translated: a field the
translation cannot carry is a 400 naming it (`param`), never dropped.

    instructions        a system message first (a continuation keeps only its own, as OpenAI does)
    input               the messages (`gateway.surfaces.responses_input`)
    max_output_tokens   max_tokens
    temperature, top_p, parallel_tool_calls, user   as they are
    tools               function tools, flat in Responses, nested under `function` in chat
    tool_choice         none / auto / required, or {"type": "function", "name"}
    text.format         response_format (text, json_object, json_schema)
    stream              stream, with the usage chunk asked for (the Response carries its usage)

Handled by the gateway, not sent: `store`, `previous_response_id`, `metadata`, `stream_options`.
Accepted where they change nothing: `reasoning` without an `effort`, `include` of
`reasoning.encrypted_content` (no reasoning items are made), `background` false, `truncation`
disabled, `text.verbosity` medium. Fields this module does not know (vendor extensions such as `seed`,
`top_k`, `prompt_cache_key`) reach the worker untouched, as with chat completions.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest, Untranslatable
from gateway.surfaces.openai_common import check_generation, text_of
from gateway.surfaces.responses_input import input_messages

Body = dict[str, Any]
_NOT_SENT = frozenset({"input", "instructions", "max_output_tokens", "tools", "tool_choice", "text", "store",
                       "previous_response_id", "metadata", "stream_options", "reasoning", "include", "background",
                       "truncation", "conversation", "prompt", "max_tool_calls", "top_logprobs"})
_CHAT_ONLY = {"messages": "input", "max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens",
              "response_format": "text.format", "functions": "tools", "function_call": "tool_choice"}
_REFUSED = {"conversation": "Conversations are not served by this gateway: use `previous_response_id`.",
            "prompt": "Prompt templates are not served by this gateway."}


def chat_body(body: Body) -> Body:
    """The chat completions body of the Responses request `body` (which is left as it is)."""
    _refuse_untranslatable(body)
    chat = {name: value for name, value in body.items() if name not in _NOT_SENT}
    messages = input_messages(body.get("input"))
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _invalid("instructions", "'instructions' must be a string.", code="invalid_type")
        messages.insert(0, {"role": "system", "content": instructions})
    chat["messages"] = messages
    limit = body.get("max_output_tokens")
    if limit is not None:
        if type(limit) is not int or limit < 1:
            raise _invalid("max_output_tokens", "'max_output_tokens' must be an integer of at least 1.",
                           code="invalid_type")
        chat["max_tokens"] = limit
    check_generation(chat)
    if body.get("tools") is not None:
        chat["tools"] = chat_tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = chat_tool_choice(body["tool_choice"])
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    if body.get("stream") is True:
        chat["stream_options"] = {"include_usage": True}
    return chat


def _refuse_untranslatable(body: Body) -> None:
    for name, instead in _CHAT_ONLY.items():
        if name in body:
            raise _invalid(name, f"'{name}' is a chat completions field: the Responses API takes `{instead}`.",
                           code="unknown_parameter")
    for name, why in _REFUSED.items():
        if body.get(name) is not None:
            raise _invalid(name, why)
    if body.get("max_tool_calls") is not None:
        raise _untranslatable("max_tool_calls", "`max_tool_calls` cannot be translated for this gateway's workers.")
    if body.get("n") not in (None, 1):
        raise _invalid("n", "A response has one answer: `n` must be 1.")
    if body.get("background") not in (None, False):
        raise _invalid("background", "Background responses are not served by this gateway.")
    if body.get("truncation") not in (None, "disabled"):
        raise _untranslatable("truncation", "Only `truncation: disabled` is served: the gateway does not cut inputs.")
    if body.get("top_logprobs") not in (None, 0):
        raise _untranslatable("top_logprobs", "`top_logprobs` cannot be translated for this gateway's workers.")
    _check_reasoning(body.get("reasoning"))
    _check_include(body.get("include"))
    for name, kind in (("store", bool), ("parallel_tool_calls", bool), ("previous_response_id", str),
                       ("user", str)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise _invalid(name, f"'{name}' must be a {'boolean' if kind is bool else 'string'}.", code="invalid_type")
    metadata = body.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(v, str) for v in metadata.values())):
        raise _invalid("metadata", "'metadata' must be an object of string values.", code="invalid_type")


def _check_reasoning(reasoning: object) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise _invalid("reasoning", "'reasoning' must be an object.", code="invalid_type")
    if reasoning.get("effort") is not None:
        raise _untranslatable("reasoning.effort", "Reasoning effort cannot be translated for this gateway's workers "
                       "(leave `reasoning.effort` out).")


def _check_include(include: object) -> None:
    if include is None:
        return
    if not isinstance(include, list):
        raise _invalid("include", "'include' must be an array.", code="invalid_type")
    for i, name in enumerate(include):
        if name != "reasoning.encrypted_content":
            raise _untranslatable(f"include[{i}]", f"'{name}' cannot be included by this gateway.")


_LEFT_OUT_TOOLS = frozenset({"web_search", "web_search_preview"})
"""Hosted tools left out rather than refused: Codex offers web search with every request, and the
workers cannot search (documented; the model answers without it)."""


def chat_tools(tools: object, where: str = "tools") -> list[Body]:
    """Function tools as chat's (`{"type": "function", "function": {...}}`), a namespace's functions among
    them; web search is left out; any other kind is a 400."""
    if not isinstance(tools, list):
        raise _invalid(where, f"'{where}' must be an array.", code="invalid_type")
    translated = []
    for i, tool in enumerate(tools):
        at = f"{where}[{i}]"
        if not isinstance(tool, dict):
            raise _invalid(at, f"'{at}' must be an object.", code="invalid_type")
        kind = tool.get("type")
        if kind == "namespace":  # a group of function tools (Codex's sub-agent tools)
            translated += chat_tools(tool.get("tools"), f"{at}.tools")
            continue
        if kind in _LEFT_OUT_TOOLS:
            continue
        if kind != "function":
            raise _untranslatable(f"{at}.type", f"Tools of type '{kind}' are not served by this gateway: only function "
                           "tools are (and namespaces of them).")
        if not isinstance(tool.get("name"), str):
            raise _invalid(f"{at}.name", f"Missing required parameter: '{at}.name'.",
                           code="missing_required_parameter")
        function = {key: tool[key] for key in ("name", "description", "parameters", "strict")
                    if tool.get(key) is not None}
        translated.append({"type": "function", "function": function})
    return translated


def with_one_system_message(messages: list[Body]) -> list[Body]:
    """`messages` with every system and developer message joined into one system message first, in order:
    chat templates refuse a system turn anywhere else, and most know no `developer` role (Codex sends its
    instructions as developer messages)."""
    system = [m for m in messages if m.get("role") in ("system", "developer")]
    if not system or (len(system) == 1 and messages[0] is system[0] and system[0]["role"] == "system"):
        return messages
    text = "\n\n".join(text_of(m.get("content")) for m in system)
    return [{"role": "system", "content": text}, *(m for m in messages if m.get("role") not in ("system", "developer"))]



def chat_tool_choice(choice: object) -> object:
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _untranslatable("tool_choice", "'tool_choice' must be none, auto, required or {\"type\": \"function\", "
                   "\"name\": ...}: other choices cannot be translated for this gateway's workers.")


def _response_format(text: object) -> Body | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise _invalid("text", "'text' must be an object.", code="invalid_type")
    if text.get("verbosity") not in (None, "medium"):
        raise _untranslatable("text.verbosity", "`text.verbosity` cannot be translated for this gateway's workers.")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise _invalid("text.format.type", "'text.format.type' must be text, json_object or json_schema.")
    assert isinstance(fmt, dict)
    if not isinstance(fmt.get("name"), str):
        raise _invalid("text.format.name", "Missing required parameter: 'text.format.name'.",
                       code="missing_required_parameter")
    if not isinstance(fmt.get("schema"), dict):
        raise _invalid("text.format.schema", "'text.format.schema' must be a JSON schema object.")
    schema = {key: fmt[key] for key in ("name", "description", "schema", "strict") if fmt.get(key) is not None}
    return {"type": "json_schema", "json_schema": schema}


def _invalid(param: str, message: str, *, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _untranslatable(param: str, message: str) -> Untranslatable:
    return Untranslatable(message, param=param, code="invalid_value")
