"""When the simulated model calls a tool, which one, and with what arguments (pure functions, no I/O).

A request that offers tools gets a call of one when it asks for one: `tool_choice` `"required"` (chat,
Responses) or `{"type": "any"}` (Messages) calls the first tool; a named choice (`{"type": "function",
"function": {"name"}}`, Responses' flat `{"type": "function", "name"}`, Messages' `{"type": "tool",
"name"}`) calls that one. The `tool-call` fault (as a model name, or `SimulatorConfig.fault`) calls the
first tool as a model deciding by itself would (`tool_choice` "auto"). A conversation whose last turn
carries tool results is answered with text, as a model does once it has what it asked for. Arguments
come from the tool's JSON schema, deterministic: strings "x", integers and numbers 1, booleans true,
arrays [], objects filled the same way, an `enum`'s first value; the `required` properties, or all of
them when the schema lists none. They stream in pieces of `CHARS_PER_TOKEN` characters, so a call's
tokens are counted like text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from simulator.config import SimulatorKind
from simulator.engine import GenerationPlan
from simulator.text import CHARS_PER_TOKEN

ToolChoiceKind = Literal["named", "required", "auto"]
"""How the call was asked for: a named tool, any tool (required), or the model's own choice."""

_SCALARS: dict[str, Any] = {"string": "x", "integer": 1, "number": 1, "boolean": True, "null": None}


@dataclass(frozen=True)
class ToolCallPlan:
    """The one tool call a reply will make."""

    name: str
    arguments: str
    """The arguments as a JSON object text (what chat's `function.arguments` carries)."""
    kind: ToolChoiceKind

    @property
    def pieces(self) -> list[str]:
        """The arguments cut into tokens for streaming (they rejoin to `arguments`)."""
        text = self.arguments
        return [text[start : start + CHARS_PER_TOKEN] for start in range(0, len(text), CHARS_PER_TOKEN)]


def offered_tools(tools: Any) -> list[tuple[str, Any]]:
    """(name, parameter schema) of each tool a request offers, in order, whatever the protocol's shape:
    chat's `{"type": "function", "function": {"name", "parameters"}}`, Responses' flat `{"type":
    "function", "name", "parameters"}`, Messages' `{"name", "input_schema"}`."""
    if not isinstance(tools, list):
        return []
    offered: list[tuple[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        spec = function if isinstance(function, dict) else tool
        name = spec.get("name")
        if isinstance(name, str) and name:
            offered.append((name, spec.get("parameters", spec.get("input_schema"))))
    return offered


def forced_choice(tool_choice: Any) -> tuple[ToolChoiceKind, str | None] | None:
    """What `tool_choice` asks for: ("named", name), ("required", None), or None (auto, none, absent)."""
    if tool_choice == "required":
        return "required", None
    if not isinstance(tool_choice, dict):
        return None
    choice_type = tool_choice.get("type")
    if choice_type == "any":
        return "required", None
    function = tool_choice.get("function")
    name = function.get("name") if isinstance(function, dict) else tool_choice.get("name")
    if choice_type in ("function", "tool") and isinstance(name, str):
        return "named", name
    return None


def plan_tool_call(tools: Any, tool_choice: Any, by_choice: bool, answered: bool) -> ToolCallPlan | None:
    """The tool call a request gets, or None for a text reply.

    `by_choice`: the model calls a tool of its own accord (the `tool-call` fault); `answered`: the
    conversation's last turn carries tool results (then the reply is text).
    """
    offered = offered_tools(tools)
    if not offered or answered or tool_choice == "none":
        return None
    forced = forced_choice(tool_choice)
    if forced is None and not by_choice:
        return None
    kind, wanted = forced if forced is not None else ("auto", None)
    schemas = dict(offered)
    name = wanted if wanted in schemas else offered[0][0]
    arguments = msgspec.json.encode(arguments_from_schema(schemas.get(name))).decode()
    return ToolCallPlan(name, arguments, kind)


def arguments_from_schema(schema: Any) -> dict[str, Any]:
    """Deterministic arguments satisfying an object schema (see the module's docstring)."""
    value = _value_for(schema)
    return value if isinstance(value, dict) else {}


def _value_for(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return "x"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    properties = schema.get("properties")
    if kind == "object" or (kind is None and isinstance(properties, dict)):
        if not isinstance(properties, dict):
            return {}
        required = schema.get("required")
        names = [name for name in required if name in properties] if isinstance(required, list) else list(properties)
        return {name: _value_for(properties[name]) for name in names}
    if kind == "array":
        return []
    return _SCALARS.get(kind, "x") if isinstance(kind, str) else "x"


def reply_call(kind: SimulatorKind, call: ToolCallPlan | None, plan: GenerationPlan) -> ToolCallPlan | None:
    """The tool call the reply shows: Ollama's parser only reports a call whose arguments were finished
    (a call cut by the token limit stays text); vLLM sends whatever arguments were generated."""
    if call is not None and kind == "ollama" and plan.finish_reason == "length":
        return None
    return call


def finish_reason(kind: SimulatorKind, call: ToolCallPlan | None, plan: GenerationPlan) -> str:
    """Chat's finish reason for a reply: `length` when cut, `tool_calls` after a call, else `stop`.

    vLLM, like OpenAI, finishes a call of a *named* `tool_choice` with `stop`.
    """
    if plan.finish_reason == "length":
        return "length"
    if call is None or (call.kind == "named" and kind == "vllm"):
        return "stop"
    return "tool_calls"
