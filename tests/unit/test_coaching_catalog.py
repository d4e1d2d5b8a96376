"""The coaching and edge-model catalogs (strict decoding, problems with their path), the shipped files
against the shipped model catalogs and the seed's feature-to-model table, history trimming, and the
stream recorder. Pure: no servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.coaching.catalog import load_coaching, parse_coaching
from gateway.coaching.config import MobileFiles, load_mobile_config
from gateway.coaching.conversation import CoachingTurn, conversation, decode_coaching_request, recording
from gateway.coaching.edge_models import load_edge_models, parse_edge_models
from gateway.coaching.sessions import Message, message_tokens, tokens_of, trim_history
from gateway.errors import InvalidRequest, StoreUnavailable
from routing.catalog import CatalogError, load_catalog, parse_catalog
from routing.model_choice import ModelChooser

REPO = Path(__file__).resolve().parents[2]
COACHING = REPO / "config" / "coaching.yaml"
EDGE = REPO / "config" / "edge_models.yaml"
MODELS = parse_catalog("models: [{name: chat}, {name: quick, aliases: [fast]}]\nrouting: {default_model: chat}\n")

# The seed's feature-to-model table: context type -> (server model, edge model or None: server only).
TABLE = {"general": ("mistral", "tinyllama-1.1b"), "goals": ("mistral", "tinyllama-1.1b"),
         "habits": ("mistral", "tinyllama-1.1b"), "tips": ("llama3.2:3b", "smollm-360m"),
         "affirmations": ("llama3.2:3b", "smollm-360m"), "reminders": ("llama3.2:3b", "smollm-360m"),
         "mood": ("mistral", None), "recommendations": ("mistral", None),
         "motivation": ("mistral", "tinyllama-1.1b"), "wellness": ("mistral", "tinyllama-1.1b")}


def problems_of(text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_coaching(text, "coaching.yaml", **kwargs)
    return caught.value.problems


@pytest.mark.parametrize("catalog", ["config/models.yaml", "deploy/catalogs/dev.yaml", "deploy/catalogs/prod.yaml"])
def test_the_shipped_files_fit_the_shipped_catalogs_and_the_seed_table(catalog: str) -> None:
    models = load_catalog(REPO / catalog)
    edge = load_edge_models(EDGE)
    coaching = load_coaching(COACHING, models=models, edge=edge.catalog)
    assert set(coaching.names) >= {"habits", "goals", "motivation", "mood", "wellness", "reminders", "affirmations"}
    chooser = ModelChooser(models)
    for name, (server, on_device) in TABLE.items():
        context = coaching.context(name)
        assert context is not None, name
        assert (context.model or chooser.by_rules(name).model) == server, name
        assert context.edge_model == on_device, name
        assert context.history_tokens + context.max_tokens + message_tokens(
            {"content": context.system_prompt}) <= 2048, name  # fits the embedded worker's context


def test_the_shipped_edge_catalog_is_the_seeds() -> None:
    edge = load_edge_models(EDGE)
    assert [m.id for m in edge.catalog.edge_models] == ["tinyllama-1.1b", "smollm-360m"]
    assert edge.document["defaults"] == {"ios": "tinyllama-1.1b", "android": "tinyllama-1.1b",
                                         "low_memory": "smollm-360m"}
    assert edge.document["edge_models"][0]["formats"]["onnx"] == {
        "url": "https://models.upcoach.com/tinyllama-1.1b-q4.onnx", "size_mb": 580, "quantization": "int4"}


def test_context_types_fill_in_the_defaults() -> None:
    coaching = parse_coaching("""
defaults: {max_tokens: 100, temperature: 0.3, history_tokens: 500}
context_types:
  goals: {system_prompt: "  Be specific.\\n"}
  reminders: {system_prompt: Short., model: fast, max_tokens: 10, temperature: 0, history_tokens: 0}
""", models=MODELS)
    goals, reminders = coaching.context("goals"), coaching.context("reminders")
    assert goals is not None and reminders is not None
    assert (goals.system_prompt, goals.max_tokens, goals.temperature, goals.history_tokens) == \
        ("Be specific.", 100, 0.3, 500)
    assert (reminders.model, reminders.max_tokens, reminders.temperature, reminders.history_tokens) == \
        ("fast", 10, 0, 0)
    assert coaching.session_ttl == 86400 and coaching.inference.mode == "auto"
    assert coaching.inference.on_device_max_prompt_length == 280
    assert coaching.context("astrology") is None


@pytest.mark.parametrize(("text", "problem"), [
    ("context_types: {goals: {system_prompt: x, promt: y}}", "$.context_types.goals: Object contains unknown field "
                                                             "`promt`"),
    ("context_types: {goals: {system_prompt: x, temperature: 3}}", "$.context_types.goals.temperature: Expected "
                                                                   "`float` <= 2.0"),
    ("inference: {mode: sometimes}", "$.inference.mode: Invalid enum value 'sometimes'"),
    ("session_ttl: 0", "$.session_ttl: Expected `float` > 0.0"),
    ("context_types: {goals: {model: chat}}", "$.context_types.goals: Object missing required field "
                                              "`system_prompt`"),
    ("context_types: {Goals!: {system_prompt: x}}", "$.context_types.Goals!: a context type is 1-40 lower-case"),
    ("context_types: {goals: {system_prompt: '  '}}", "$.context_types.goals.system_prompt: must not be empty"),
    ("context_types: {goals: {system_prompt: x, model: gpt-9}}", "$.context_types.goals.model: unknown model "
                                                                 "'gpt-9'"),
    ("context_types: {goals: {system_prompt: x, edge_model: phi-9}}", "$.context_types.goals.edge_model: unknown "
                                                                      "edge model 'phi-9'"),
    ("context_types: [goals]", "$.context_types: Expected `object`, got `array`"),
    ("context_types: {goals: {system_prompt: [unclosed", "$: not valid YAML"),
])
def test_problems_name_the_file_the_path_and_the_reason(text: str, problem: str) -> None:
    with pytest.raises(CatalogError, match=r"invalid catalog coaching\.yaml") as caught:
        parse_coaching(text, "coaching.yaml", models=MODELS, edge=load_edge_models(EDGE).catalog)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_without_a_default_model_every_context_type_needs_a_route() -> None:
    models = parse_catalog("models: [{name: quick}]\nrouting: {routes: [{pattern: remind, model: quick}]}\n")
    parse_coaching("context_types: {reminders: {system_prompt: x}}", models=models)
    assert problems_of("context_types: {goals: {system_prompt: x}}", models=models) == [
        "$.context_types.goals.model: no model, no routing rule matches 'goals', and the model catalog has no "
        "default model"]


@pytest.mark.parametrize(("text", "problem"), [
    ("edge_models: [{id: a, name: A, platforms: [windows], formats: {}, max_context: 1}]",
     "$.edge_models[0].platforms[0]: Invalid enum value 'windows'"),
    ("edge_models: [{id: a, name: A, platforms: [ios], formats: {onnx: {url: 'ftp://x/a', size_mb: 1}}, "
     "max_context: 1}]", "$.edge_models[0].formats.onnx.url: 'ftp://x/a' is not an absolute http(s) URL"),
    ("edge_models: [{id: a, name: A, platforms: [ios], formats: {onnx: {url: 'https://x/a', size_mb: 1}}, "
     "max_context: 1}]\ndefaults: {android: a}", "$.defaults.android: the model 'a' does not run on android"),
    ("defaults: {low_memory: b}", "$.defaults.low_memory: unknown edge model 'b'"),
    ("edge_models: [{id: a, name: A, platforms: [ios], formats: {onnx: {url: 'https://x/a', size_mb: 1, "
     "bits: 4}}, max_context: 1}]", "$.edge_models[0].formats.onnx: Object contains unknown field `bits`"),
])
def test_edge_catalog_problems(text: str, problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_edge_models(text, "edge_models.yaml")
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_files_named_explicitly_must_exist_defaults_may_be_absent(tmp_path: Path) -> None:
    absent = str(tmp_path / "nope.yaml")
    with pytest.raises(CatalogError, match="cannot read the file"):
        load_mobile_config(MobileFiles.from_env({"GATEWAY_COACHING_CONFIG": absent}), MODELS)
    with pytest.raises(CatalogError, match="cannot read the file"):
        load_mobile_config(MobileFiles.from_env({"GATEWAY_EDGE_MODELS_CONFIG": absent}), MODELS)
    empty = load_mobile_config(MobileFiles(coaching_path=absent, edge_models_path=absent), MODELS)
    assert empty.coaching.names == [] and empty.edge.document == {"edge_models": [], "defaults": {}}


def test_a_default_coaching_file_for_another_catalog_only_warns_a_named_one_stops() -> None:
    defaults = load_mobile_config(MobileFiles(coaching_path=str(COACHING), edge_models_path=str(EDGE)), MODELS)
    assert "reminders" in defaults.coaching.names  # names llama3.2:3b, which MODELS lacks: a warning
    named = MobileFiles(coaching_path=str(COACHING), coaching_required=True, edge_models_path=str(EDGE))
    with pytest.raises(CatalogError, match=r"\$\.context_types\.reminders\.model: unknown model 'llama3\.2:3b'"):
        load_mobile_config(named, MODELS)


# --- turns: decoding, the conversation sent, trimming ---------------------------------------------------

def user(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def test_trimming_keeps_the_latest_messages_from_a_question() -> None:
    history = [user("a" * 40), assistant("b" * 40), user("c" * 40), assistant("d" * 40)]  # 14 tokens each
    assert trim_history(history, 56) == history
    assert trim_history(history, 55) == history[2:]  # three would fit, but not an answer without its question
    assert trim_history(history, 27) == []
    assert trim_history(history, 0) == []
    parts: Message = {"role": "user", "content": [{"type": "text", "text": "x" * 8}, {"type": "image_url"}]}
    assert tokens_of([parts]) == 6  # only text parts count


def turn(raw: bytes, text: str) -> CoachingTurn:
    coaching = parse_coaching(text)
    return decode_coaching_request(raw, coaching)


def test_the_conversation_is_system_prompt_then_what_history_fits_then_the_new_messages() -> None:
    coaching = "context_types: {goals: {system_prompt: Coach., history_tokens: 40}}"
    new = user("n" * 40)  # 14 tokens: 26 left for history
    decoded = turn(b'{"context_type": "goals", "messages": [{"role": "user", "content": "' + b"n" * 40 + b'"}]}',
                   coaching)
    history = [user("a" * 40), assistant("b" * 40), user("c" * 20), assistant("d" * 20)]  # 14, 14, 9, 9
    assert conversation(decoded, history) == [{"role": "system", "content": "Coach."}, *history[2:], new]
    assert decoded.inference.body["max_tokens"] == 512 and decoded.inference.body["temperature"] == 0.7


@pytest.mark.parametrize(("body", "param"), [
    (b'{"context_type": "goals", "messages": [{"role": "user", "content": "x"}], "session_id": ""}', "session_id"),
    (b'{"context_type": "goals", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens"),
    (b'{"context_type": "goals", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
     "temperature"),
    (b'{"context_type": "goals", "messages": [{"role": "user", "content": "x"}], "session_id": "s", "n": 2}', "n"),
    (b'{"context_type": "goals", "messages": []}', "messages"),
    (b'{"context_type": "goal", "messages": [{"role": "user", "content": "x"}]}', "context_type"),
])
def test_bad_coaching_requests_name_their_param(body: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        turn(body, "context_types: {goals: {system_prompt: x}}")
    assert caught.value.param == param


# --- recording a stream ---------------------------------------------------------------------------------

class Events:
    def __init__(self, events: list[bytes]) -> None:
        self.events = events
        self.closed = False

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            for event in self.events:
                yield event
        finally:
            self.closed = True


def chunk(content: str) -> bytes:
    return b'data: {"choices": [{"index": 0, "delta": {"content": "' + content.encode() + b'"}}]}\n\n'


DONE = b"data: [DONE]\n\n"
ERROR = b'data: {"error": {"message": "boom", "type": "api_error", "param": null, "code": "upstream_error"}}\n\n'


async def relayed(events: list[bytes], fail: bool = False) -> tuple[list[bytes], list[Message], Events]:
    saved: list[Message] = []
    source = Events(events)

    async def save(answer: Message) -> None:
        if fail:
            raise StoreUnavailable("redis append to session failed")
        saved.append(answer)

    out = [event async for event in recording(source.stream(), save)]
    return out, saved, source


async def test_a_complete_stream_is_passed_through_and_its_answer_saved_before_done() -> None:
    events = [b": comment\n\n", chunk("Hel"), chunk("lo"), b'data: {"choices": [], "usage": {}}\n\n', DONE]
    out, saved, source = await relayed(events)
    assert out == events and saved == [assistant("Hello")] and source.closed


async def test_a_stream_with_an_error_event_or_no_done_is_not_saved() -> None:
    assert (await relayed([chunk("Hel"), ERROR, DONE]))[1] == []
    assert (await relayed([chunk("Hel"), chunk("lo")]))[1] == []


async def test_a_failed_save_becomes_the_last_event_before_done() -> None:
    out, saved, _ = await relayed([chunk("Hi"), DONE], fail=True)
    assert saved == [] and out[0] == chunk("Hi") and out[-1] == DONE
    assert b'"code":"store_unavailable"' in out[1]


async def test_a_client_that_leaves_closes_the_worker_stream() -> None:
    source = Events([chunk("a"), chunk("b"), DONE])

    async def save(answer: Message) -> None:
        raise AssertionError("nothing is saved when the client leaves")

    recorder = recording(source.stream(), save)
    assert await anext(recorder) == chunk("a")
    await recorder.aclose()  # type: ignore[attr-defined]
    assert source.closed
