"""API surfaces (`gateway.surfaces`): decoding and its errors, what routing and prefix affinity see,
the admission estimate, and what goes into the cache key."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gateway.cache.plan import plan_for
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.surfaces import (
    ANTHROPIC_MESSAGES,
    BUILTIN_SURFACES,
    CHAT_COMPLETIONS,
    COMPLETIONS,
    EMBEDDINGS,
    Surface,
    SurfaceRegistry,
)
from gateway.surfaces.passthrough import DETOKENIZE, RERANK, SCORE, TOKENIZE

OPENAI_SURFACES = (CHAT_COMPLETIONS, COMPLETIONS, EMBEDDINGS)
"""The surfaces workers are asked as clients sent them (the others translate)."""


def _raw(body: Any) -> bytes:
    return msgspec.json.encode(body)


def _refusal(surface: Surface, raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        surface.decode(raw)
    return caught.value


def _chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": list(messages), **fields}


# ---- decoding ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("surface", BUILTIN_SURFACES, ids=lambda s: s.name)
@pytest.mark.parametrize(("raw", "param", "code"), [
    (b'{"model": "chat", "messages": ', None, "invalid_json"),
    (b"\xff\xfe", None, "invalid_json"),
    (b"[1, 2]", None, "invalid_json"),
    (b'{"model": 7}', "model", "invalid_type"),
    (b'{"model": "chat", "stream": "yes"}', "stream", "invalid_type"),
])
def test_every_surface_refuses_what_no_surface_accepts(surface: Surface, raw: bytes, param: str | None,
                                                       code: str) -> None:
    error = _refusal(surface, raw)
    assert (error.param, error.error_code, error.status_code()) == (param, code, 400)


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"model": "chat"}, "messages", "missing_required_parameter"),
    ({"messages": []}, "messages", "invalid_value"),
    ({"messages": "hello"}, "messages", "invalid_value"),
    ({"messages": [{"role": "user", "content": "hi"}, "hi"]}, "messages[1]", "invalid_type"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role", "missing_required_parameter"),
    ({"messages": [{"role": 3, "content": "hi"}]}, "messages[0].role", "missing_required_parameter"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "wizard", "content": "hi"}]}, "messages[1].role",
     "invalid_value"),
])
def test_chat_names_the_message_at_fault(body: dict[str, Any], param: str, code: str) -> None:
    error = _refusal(CHAT_COMPLETIONS, _raw(body))
    assert (error.param, error.error_code) == (param, code)


@pytest.mark.parametrize("surface", [CHAT_COMPLETIONS, COMPLETIONS], ids=lambda s: s.name)
@pytest.mark.parametrize(("field", "value"), [
    ("max_tokens", "lots"), ("max_tokens", 0), ("max_completion_tokens", 2.5), ("n", True),
    ("temperature", "hot"), ("top_p", [1]), ("seed", "42"),
])
def test_generation_fields_of_the_wrong_type_are_the_clients_400(surface: Surface, field: str, value: Any) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "prompt": "hi", field: value}
    error = _refusal(surface, _raw(body))
    assert (error.param, error.error_code, error.status_code()) == (field, "invalid_type", 400)


def test_generation_fields_of_the_right_types_pass() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "max_completion_tokens": 5,
            "n": 1, "temperature": 0, "top_p": 0.9, "presence_penalty": -1.5, "seed": -3}
    assert CHAT_COMPLETIONS.decode(_raw(body)).body == body


@pytest.mark.parametrize(("surface", "field"), [(COMPLETIONS, "prompt"), (EMBEDDINGS, "input")],
                         ids=["completions", "embeddings"])
def test_text_inputs_must_be_given_and_not_empty(surface: Surface, field: str) -> None:
    assert _refusal(surface, _raw({"model": "m"})).param == field
    assert _refusal(surface, _raw({"model": "m"})).error_code == "missing_required_parameter"
    bad: object
    for bad in ([], 7, {"text": "x"}):
        error = _refusal(surface, _raw({field: bad}))
        assert (error.param, error.error_code) == (field, "invalid_value")
    for good in ("once", ["one", "two"], [1, 2, 3], [[1, 2], [3]]):
        assert surface.decode(_raw({field: good})).body[field] == good


def test_embeddings_cannot_be_streamed_but_their_input_is_checked_first() -> None:
    error = _refusal(EMBEDDINGS, _raw({"input": "x", "stream": True}))
    assert (error.param, error.error_code) == ("stream", "invalid_value")
    assert error.message == "Embeddings cannot be streamed."
    assert _refusal(EMBEDDINGS, _raw({"stream": True})).param == "input"
    assert EMBEDDINGS.decode(_raw({"input": "x", "stream": False})).stream is False
    assert [s.streamable for s in OPENAI_SURFACES] == [True, True, False]
    assert [s.captured for s in OPENAI_SURFACES] == [True, True, False]  # embeddings never reach capture


def test_a_decoded_request_keeps_the_whole_body_and_its_surface() -> None:
    body = _chat({"role": "user", "content": "hi"}, stream=None, tools=[{"type": "function"}], vendor_extra={"a": 1})
    request = CHAT_COMPLETIONS.decode(_raw(body))
    assert request.surface is CHAT_COMPLETIONS and request.endpoint == "chat/completions"
    assert request.body == body and request.stream is False
    assert request.requested_model == "chat"
    assert CHAT_COMPLETIONS.decode(_raw({**body, "model": ""})).requested_model is None
    streamed = CHAT_COMPLETIONS.decode(_raw({**body, "stream": True, "stream_options": {"include_usage": True}}))
    assert streamed.stream and streamed.wants_usage


# ---- what routing and prefix affinity see ----------------------------------------------------------------

PARTS = [{"type": "text", "text": "first"}, {"type": "image_url", "image_url": {"url": "data:,"}},
         {"type": "text", "text": "second"}]


def test_chat_routing_sees_the_last_user_message_as_text() -> None:
    body = _chat({"role": "system", "content": "be brief"}, {"role": "user", "content": "old question"},
                 {"role": "assistant", "content": None, "tool_calls": []}, {"role": "user", "content": PARTS})
    assert CHAT_COMPLETIONS.routing_text(body) == "first\nsecond"
    assert CHAT_COMPLETIONS.routing_text(body, "conversation") == "be brief\nold question\n\nfirst\nsecond"
    assert CHAT_COMPLETIONS.routing_text(_chat({"role": "system", "content": "only"})) == ""


def test_chat_prefix_affinity_sees_every_turn_with_its_role() -> None:
    body = _chat({"role": "system", "content": "be brief"}, {"role": "user", "content": PARTS})
    assert CHAT_COMPLETIONS.conversation(body) == "<system>be brief<user>first\nsecond"


@pytest.mark.parametrize(("surface", "field"), [(COMPLETIONS, "prompt"), (EMBEDDINGS, "input")],
                         ids=["completions", "embeddings"])
def test_text_input_surfaces_route_on_their_input(surface: Surface, field: str) -> None:
    assert surface.routing_text({field: "a quick tip"}) == "a quick tip"
    assert surface.routing_text({field: ["one", "two"]}, "conversation") == "one\ntwo"
    assert surface.routing_text({field: [[1, 2], [3]]}) == ""  # token ids carry no text
    assert surface.conversation({field: ["one", "two"]}) == "one\ntwo"


# ---- admission -------------------------------------------------------------------------------------------

def test_the_admission_estimate_is_prompt_plus_the_answer_reserved() -> None:
    body = _chat({"role": "system", "content": "x" * 40}, {"role": "user", "content": "y" * 40})
    assert CHAT_COMPLETIONS.prompt_tokens_estimate(body) == 80 // 4 + 4 * 2 + 1
    assert COMPLETIONS.prompt_tokens_estimate({"prompt": "z" * 40}) == 11
    assert CHAT_COMPLETIONS.completion_reserve(body, 256) == 256
    assert CHAT_COMPLETIONS.completion_reserve({**body, "max_tokens": 30}, 256) == 30
    assert COMPLETIONS.completion_reserve({"max_completion_tokens": 20, "max_tokens": 30}, 256) == 20
    assert COMPLETIONS.completion_reserve({"max_tokens": -1}, 256) == 256
    assert EMBEDDINGS.completion_reserve({"input": "x"}, 256) == 0  # nothing is generated


def test_the_estimate_counts_tool_definitions_by_their_json() -> None:
    body = _chat({"role": "user", "content": "y" * 40})
    tools = [{"type": "function", "function": {"name": "weather", "description": "d" * 400}}]
    tools_json = len(json.dumps(tools, separators=(",", ":")))
    assert CHAT_COMPLETIONS.prompt_tokens_estimate({**body, "tools": tools}) == (40 + tools_json) // 4 + 4 + 1
    assert CHAT_COMPLETIONS.prompt_tokens_estimate({**body, "tools": []}) == 40 // 4 + 4 + 1


# ---- the cache key ---------------------------------------------------------------------------------------

def _key(surface: Surface, body: dict[str, Any]) -> str | None:
    plan = plan_for(surface, body, "chat", None, "team-a", default_ttl=60, cache_control=None, may_bypass=False)
    return None if plan is None else plan.key


def test_only_deterministic_single_choice_requests_are_cached_by_default() -> None:
    body = _chat({"role": "user", "content": "hi"})
    assert CHAT_COMPLETIONS.is_deterministic({**body, "temperature": 0})
    assert CHAT_COMPLETIONS.is_deterministic({**body, "seed": 7, "temperature": 0.9})
    assert not CHAT_COMPLETIONS.is_deterministic({**body, "temperature": 0.2})
    assert not CHAT_COMPLETIONS.is_deterministic(body)
    assert _key(CHAT_COMPLETIONS, body) is None
    assert _key(CHAT_COMPLETIONS, {**body, "temperature": 0, "n": 2}) is None
    assert _key(CHAT_COMPLETIONS, {**body, "temperature": 0, "n": 1}) is not None


def test_the_cache_key_is_what_can_change_the_answer() -> None:
    body = _chat({"role": "user", "content": "hi"}, temperature=0, max_tokens=9)
    fields = CHAT_COMPLETIONS.cache_fields({**body, "stream": True, "stream_options": {"include_usage": True},
                                            "user": "u1", "session_id": "s1"})
    assert fields == {"messages": body["messages"], "temperature": 0, "max_tokens": 9}
    key = _key(CHAT_COMPLETIONS, body)
    assert key == _key(CHAT_COMPLETIONS, {**body, "stream": True, "user": "u2", "model": "alias"})
    assert key != _key(CHAT_COMPLETIONS, {**body, "max_tokens": 10})
    prompt = {"prompt": "hi", "temperature": 0}
    assert _key(COMPLETIONS, prompt) != _key(EMBEDDINGS, {"input": "hi", "temperature": 0})  # the surface counts


# ---- encoding and the registry ---------------------------------------------------------------------------

def test_openai_surfaces_pass_answers_streams_and_errors_through() -> None:
    error = ModelNotFound("no such model", param="model")
    for surface in OPENAI_SURFACES:
        assert not surface.translates and surface.worker_name == surface.name  # workers are asked as sent
        assert surface.error_body(error) == error.body()


def test_the_registry_maps_each_path_to_one_surface() -> None:
    registry = SurfaceRegistry()
    assert dict(registry.by_path) == {
        "/v1/chat/completions": CHAT_COMPLETIONS, "/v1/completions": COMPLETIONS, "/v1/embeddings": EMBEDDINGS,
        "/v1/messages": ANTHROPIC_MESSAGES, "/v1/rerank": RERANK, "/rerank": RERANK, "/v1/score": SCORE,
        "/score": SCORE, "/tokenize": TOKENIZE, "/v1/tokenize": TOKENIZE, "/detokenize": DETOKENIZE,
        "/v1/detokenize": DETOKENIZE}
    assert tuple(registry) == BUILTIN_SURFACES
    with pytest.raises(ValueError, match="/v1/completions"):
        SurfaceRegistry([*BUILTIN_SURFACES, COMPLETIONS])
    with pytest.raises(TypeError):
        registry.by_path["/v1/other"] = EMBEDDINGS  # type: ignore[index]
