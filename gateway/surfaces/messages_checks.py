"""Checking an Anthropic Messages request (`POST /v1/messages`, `/v1/messages/count_tokens`) before it is
translated into chat completions.

Like Anthropic's own API, a field this gateway does not know is refused rather than passed on: a
translation has nowhere to put it, and dropping it would answer another request than the one sent.
Each failure is an `InvalidRequest` whose message starts with the field's path the way Anthropic writes
it (`messages.0.content.1.type: ...`: its errors have no `param`), and whose `param` is that path too.

Ignored on purpose (`IGNORED_FIELDS`, `IGNORED_TOOL_FIELDS`): hints about how Anthropic caches, bills,
schedules, edits or reports on a prompt, which Claude Code sends on every request and no chat
completions worker could act on (`cache_control` everywhere, `context_management`, `diagnostics`,
`betas`, `speed`, `service_tier`, `inference_geo`; a tool's `eager_input_streaming`), and `tool_reference`
parts of tool results (they carry no text). Past turns' `thinking` and `redacted_thinking` blocks are
accepted (Anthropic itself leaves them out of the context). `thinking` (`enabled`, `adaptive` or
`disabled`; Claude Code sends it on every request) is accepted: it decides whether the worker's reasoning
is returned, and `budget_tokens` cannot be carried (the worker's model decides how long it reasons).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest, Untranslatable

Body = dict[str, Any]

IGNORED_FIELDS = frozenset({"cache_control", "context_management", "diagnostics", "betas", "speed", "service_tier",
                            "inference_geo"})
"""Top-level fields accepted and not translated: they change how Anthropic serves a prompt, not the answer."""
IGNORED_TOOL_FIELDS = frozenset({"cache_control", "eager_input_streaming"})
_TOP_LEVEL = frozenset({"model", "max_tokens", "messages", "system", "tools", "tool_choice", "stop_sequences",
                        "temperature", "top_p", "top_k", "stream", "metadata", "thinking", "output_config",
                        *IGNORED_FIELDS})
_TEXT_BLOCK = frozenset({"type", "text", "cache_control", "citations"})
_IMAGE_BLOCK = frozenset({"type", "source", "cache_control"})
_TOOL_USE_BLOCK = frozenset({"type", "id", "name", "input", "cache_control"})
_TOOL_RESULT_BLOCK = frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"})
_TOOL = frozenset({"type", "name", "description", "input_schema", "strict", *IGNORED_TOOL_FIELDS})
_TOOL_CHOICES = ("auto", "any", "tool", "none")
THINKING_TYPES = ("enabled", "adaptive", "disabled")
EFFORTS = ("low", "medium", "high", "xhigh", "max")
_PAST_THINKING = frozenset({"thinking", "redacted_thinking"})
"""Block types of an assistant's past reasoning, which Anthropic leaves out of the context too."""


def refuse(path: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    """The 400 for the field at `path` (Anthropic's `messages.0.content` spelling)."""
    return InvalidRequest(f"{path}: {message}", param=path, code=code)


def untranslatable(path: str, message: str, code: str = "invalid_value") -> Untranslatable:
    """The 400 for a field at `path` the translation cannot carry (a native worker can be sent it)."""
    return Untranslatable(f"{path}: {message}", param=path, code=code)


def check_messages_request(body: Body, *, counting: bool = False) -> None:
    """A `/v1/messages` body (`counting`: a `/v1/messages/count_tokens` one, which has no `max_tokens`)
    that the translation can carry whole; else the 400 naming the first field at fault."""
    for name in body:
        if name not in _TOP_LEVEL:
            raise untranslatable(name, "Extra inputs are not permitted (this gateway translates Messages into chat "
                               "completions, which cannot carry this field).", "unsupported_parameter")
    _check_limits(body, counting)
    messages = body.get("messages")
    if messages is None:
        raise refuse("messages", "Field required", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise refuse("messages", "Input should be a non-empty list of messages")
    for i, message in enumerate(messages):
        _check_message(message, f"messages.{i}")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _check_blocks(system, "system", frozenset({"text"}))
    _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"))
    _check_options(body)


def _check_limits(body: Body, counting: bool) -> None:
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        if not counting:
            raise refuse("max_tokens", "Field required", "missing_required_parameter")
    elif type(max_tokens) is not int or max_tokens < 1:
        raise refuse("max_tokens", "Input should be an integer of at least 1", "invalid_type")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and type(value) not in (int, float):
            raise refuse(name, "Input should be a number", "invalid_type")
    top_k = body.get("top_k")
    if top_k is not None and (type(top_k) is not int or top_k < 0):
        raise refuse("top_k", "Input should be an integer of at least 0", "invalid_type")


def _check_message(message: object, path: str) -> None:
    if not isinstance(message, dict):
        raise refuse(path, "Input should be an object", "invalid_type")
    for name in message:
        if name not in ("role", "content"):
            raise refuse(f"{path}.{name}", "Extra inputs are not permitted", "unsupported_parameter")
    role = message.get("role")
    if role not in ("user", "assistant", "system"):  # Claude Code sends system messages among the turns
        raise refuse(f"{path}.role", "Input should be 'user', 'assistant' or 'system'")
    content = message.get("content")
    if content is None:
        raise refuse(f"{path}.content", "Field required", "missing_required_parameter")
    if isinstance(content, str):
        return
    allowed = frozenset({"text", "image", "tool_result"}) if role == "user" \
        else frozenset({"text"}) if role == "system" else frozenset({"text", "tool_use"}) | _PAST_THINKING
    _check_blocks(content, f"{path}.content", allowed)


def _check_blocks(blocks: object, path: str, allowed: frozenset[str]) -> None:
    """A list of content blocks, each of a type in `allowed`."""
    if not isinstance(blocks, list):
        raise refuse(path, "Input should be a string or a list of content blocks", "invalid_type")
    for j, block in enumerate(blocks):
        where = f"{path}.{j}"
        if not isinstance(block, dict):
            raise refuse(where, "Input should be an object", "invalid_type")
        kind = block.get("type")
        if kind not in allowed:
            raise untranslatable(f"{where}.type", f"Input tag {kind!r} does not match any of the expected tags: "
                                          f"{', '.join(sorted(allowed))}")
        if kind == "text":
            _check_text(block, where)
        elif kind == "image":
            _check_image(block, where)
        elif kind == "tool_use":
            _check_tool_use(block, where)
        elif kind == "tool_result":
            _check_tool_result(block, where)


def _check_fields(block: Body, where: str, known: frozenset[str]) -> None:
    for name in block:
        if name not in known:
            raise untranslatable(f"{where}.{name}", "Extra inputs are not permitted (a chat completions worker "
                                            "cannot be given it)", "unsupported_parameter")


def _check_text(block: Body, where: str) -> None:
    _check_fields(block, where, _TEXT_BLOCK)
    if not isinstance(block.get("text"), str):
        raise refuse(f"{where}.text", "Input should be a string", "invalid_type")
    if block.get("citations"):
        raise untranslatable(f"{where}.citations", "Citations cannot be translated for chat completions workers",
                     "unsupported_parameter")


def _check_image(block: Body, where: str) -> None:
    _check_fields(block, where, _IMAGE_BLOCK)
    source = block.get("source")
    if not isinstance(source, dict):
        raise refuse(f"{where}.source", "Field required", "missing_required_parameter")
    kind = source.get("type")
    if kind == "base64":
        for name in ("media_type", "data"):
            if not isinstance(source.get(name), str):
                raise refuse(f"{where}.source.{name}", "Input should be a string", "invalid_type")
    elif kind == "url":
        if not isinstance(source.get("url"), str):
            raise refuse(f"{where}.source.url", "Input should be a string", "invalid_type")
    else:
        raise untranslatable(f"{where}.source.type", "Input should be 'base64' or 'url' (other image sources cannot "
                                             "be translated for chat completions workers)")


def _check_tool_use(block: Body, where: str) -> None:
    _check_fields(block, where, _TOOL_USE_BLOCK)
    for name in ("id", "name"):
        if not isinstance(block.get(name), str) or not block[name]:
            raise refuse(f"{where}.{name}", "Input should be a non-empty string", "invalid_type")
    if not isinstance(block.get("input"), dict):
        raise refuse(f"{where}.input", "Input should be an object", "invalid_type")


def _check_tool_result(block: Body, where: str) -> None:
    _check_fields(block, where, _TOOL_RESULT_BLOCK)
    if not isinstance(block.get("tool_use_id"), str) or not block["tool_use_id"]:
        raise refuse(f"{where}.tool_use_id", "Input should be a non-empty string", "invalid_type")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise refuse(f"{where}.is_error", "Input should be a boolean", "invalid_type")
    content = block.get("content")
    if content is not None and not isinstance(content, str):
        _check_blocks(content, f"{where}.content", frozenset({"text", "image", "tool_reference"}))


def _check_tools(tools: object) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise refuse("tools", "Input should be a list", "invalid_type")
    for i, tool in enumerate(tools):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise refuse(where, "Input should be an object", "invalid_type")
        if tool.get("type") not in (None, "custom"):  # Anthropic's server tools run at Anthropic
            raise untranslatable(f"{where}.type", f"Tool type {tool['type']!r} cannot be translated for chat "
                                                  "completions workers (only custom tools can)")
        _check_fields(tool, where, _TOOL)
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise refuse(f"{where}.name", "Input should be a non-empty string", "invalid_type")
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise refuse(f"{where}.description", "Input should be a string", "invalid_type")
        if not isinstance(tool.get("input_schema"), dict):
            raise refuse(f"{where}.input_schema", "Input should be an object (a JSON schema)", "invalid_type")
        if tool.get("strict") is not None and not isinstance(tool["strict"], bool):
            raise refuse(f"{where}.strict", "Input should be a boolean", "invalid_type")


def _check_tool_choice(choice: object) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in _TOOL_CHOICES:
        raise refuse("tool_choice.type", f"Input should be one of {', '.join(_TOOL_CHOICES)}")
    _check_fields(choice, "tool_choice", frozenset({"type", "name", "disable_parallel_tool_use"}))
    if choice["type"] == "tool" and (not isinstance(choice.get("name"), str) or not choice["name"]):
        raise refuse("tool_choice.name", "Field required", "missing_required_parameter")
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise refuse("tool_choice.disable_parallel_tool_use", "Input should be a boolean", "invalid_type")


def _check_options(body: Body) -> None:
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise refuse("stop_sequences", "Input should be a list of strings", "invalid_type")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise refuse("metadata", "Input should be an object", "invalid_type")
        _check_fields(metadata, "metadata", frozenset({"user_id"}))
        user = metadata.get("user_id")
        if user is not None and not isinstance(user, str):
            raise refuse("metadata.user_id", "Input should be a string", "invalid_type")
    _check_output_config(body.get("output_config"))
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
            raise refuse("thinking.type", f"Input should be one of {', '.join(THINKING_TYPES)}")
        budget = thinking.get("budget_tokens")
        if budget is not None and type(budget) is not int:
            raise refuse("thinking.budget_tokens", "Input should be an integer", "invalid_type")


def _check_output_config(config: object) -> None:
    """`output_config`: a JSON schema `format` (carried as `response_format`), an `effort` (as
    `reasoning_effort`)."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise refuse("output_config", "Input should be an object", "invalid_type")
    _check_fields(config, "output_config", frozenset({"format", "effort"}))
    effort = config.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise refuse("output_config.effort", f"Input should be one of {', '.join(EFFORTS)}")
    form = config.get("format")
    if form is not None and (not isinstance(form, dict) or form.get("type") != "json_schema"
                             or not isinstance(form.get("schema"), dict)):
        raise refuse("output_config.format", "Input should be {\"type\": \"json_schema\", \"schema\": {...}}")
