"""Interaction capture, piece by piece: PII redaction, the rotating store and its cap, the capture's opt-in
and pass-through, and the fine-tuning sets built from what was captured (how a stream is folded into
one answer: tests/unit/test_stream_folding.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.auth import KeyLimits, new_key
from gateway.auth.authenticator import Caller
from gateway.capture.config import CaptureConfig, route_opt_in
from gateway.capture.dataset import ExportStats, Selection, describe, export, load, parse_since
from gateway.capture.interactions import InteractionCapture
from gateway.capture.redaction import EMAIL, PHONE, REDACTED, Redactor
from gateway.capture.store import CaptureWriter, capture_files, find_interaction, read_records
from gateway.cli import dataset as dataset_cli
from gateway.inference.forwarder import Reply
from gateway.observability.request_record import RequestRecord
from gateway.operator_patterns import parse_patterns
from gateway.settings import SettingsError, load_settings
from routing.catalog import parse_catalog

# redaction -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "write to john.doe+tag@example.co.uk please", "JANE@EXAMPLE.ORG", "a@b.io,", "<x_y-z%1@mail.example.com>"])
def test_emails_are_replaced(text: str) -> None:
    scrubbed = Redactor().text(text)
    assert EMAIL in scrubbed and "@" not in scrubbed


@pytest.mark.parametrize("text", [
    "+1 (555) 123-4567", "555-123-4567", "555.123.4567", "+44 20 7946 0958", "0151 496 0123", "+33612345678",
    "(020) 7946 0958", "call 5551234567 now"])
def test_phone_numbers_are_replaced(text: str) -> None:
    scrubbed = Redactor().text(text)
    assert PHONE in scrubbed
    assert sum(c.isdigit() for c in scrubbed) == 0


@pytest.mark.parametrize("text", [
    "on 2024-01-15 at 10:30", "15/01/2024", "pi is 3.14159265", "ip 192.168.1.10", "order 12345", "in 2025",
    "chatcmpl-1234567890", "version 1.2.3", "1,000,000 users", "a 16 digit 4111111111111111111 id"])
def test_other_numbers_are_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


def test_configured_patterns_run_first_and_structural_fields_are_kept() -> None:
    redactor = Redactor(parse_patterns('["ACME-[0-9]+", "(?i)secret project \\\\w+"]'))
    body: dict[str, Any] = {"model": "bob@example.com", "messages": [
        {"role": "user", "name": "alice", "content": "ticket ACME-42 for bob@example.com, Secret Project Zeus"},
        {"role": "user", "content": [{"type": "text", "text": "ring 555-123-4567"}]}],
        "user": "carol@example.com", "temperature": 0.5, "n": 1}
    scrubbed = redactor.scrub(body)
    assert scrubbed["model"] == "bob@example.com"  # structural: left as it is
    assert scrubbed["messages"][0] == {"role": "user", "name": "alice",
                                       "content": f"ticket {REDACTED} for {EMAIL}, {REDACTED}"}
    assert scrubbed["messages"][1]["content"] == [{"type": "text", "text": f"ring {PHONE}"}]
    assert scrubbed["user"] == EMAIL and scrubbed["temperature"] == 0.5 and scrubbed["n"] == 1
    assert body["messages"][0]["content"].startswith("ticket ACME-42")  # the original is untouched


def test_redaction_patterns_are_checked() -> None:
    assert parse_patterns("") == ()
    assert parse_patterns("ACME-[0-9]+") == ("ACME-[0-9]+",)
    assert parse_patterns('["a,b{1,2}", "c"]') == ("a,b{1,2}", "c")
    for bad in ("(unclosed", '["ok", "(?<=lookbehind)x"]', "[not json", '["", "x"]', "[1]"):
        with pytest.raises(ValueError):
            parse_patterns(bad)


# streams -------------------------------------------------------------------------------------------


def sse(*payloads: object) -> list[bytes]:
    return [b"data: " + (p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n\n" for p in payloads]


# store ---------------------------------------------------------------------------------------------


def line(n: int, size: int = 100) -> bytes:
    body = msgspec.json.encode({"type": "interaction", "request_id": f"r{n}", "tenant": "t", "pad": ""})
    return body[:-2] + b"x" * (size - len(body) - 1) + b'"}\n'


def test_files_rotate_at_file_bytes(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, file_bytes=1000, max_bytes=100_000)
    for n in range(25):
        writer.write([line(n)])
    writer.write([line(n) for n in range(25, 50)])  # one batch split across files
    writer.close()
    files = capture_files(tmp_path)
    assert [f.stat().st_size for f in files] == [1000] * 5
    assert [r["request_id"] for r in read_records(tmp_path)] == [f"r{n}" for n in range(50)]


def test_the_size_cap_deletes_the_oldest_files(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, file_bytes=1000, max_bytes=3500)
    for n in range(100):
        writer.write([line(n)])
        assert sum(f.stat().st_size for f in capture_files(tmp_path)) <= 3500
    writer.close()
    kept = [r["request_id"] for r in read_records(tmp_path)]
    assert kept == [f"r{n}" for n in range(70, 100)]  # three files: the newest ones
    assert len(capture_files(tmp_path)) == 3


def test_a_record_larger_than_a_file_gets_a_file_of_its_own(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, file_bytes=1000, max_bytes=10_000)
    writer.write([line(0), line(1, size=2500), line(2)])
    writer.close()
    assert [f.stat().st_size for f in capture_files(tmp_path)] == [100, 2500, 100]


def test_no_directory_until_the_first_write(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "captures", file_bytes=1000, max_bytes=10_000)
    writer.close()
    assert not (tmp_path / "captures").exists()
    assert list(read_records(tmp_path / "captures")) == []


def test_find_interaction_checks_the_tenant(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, file_bytes=1000, max_bytes=10_000)
    writer.write([line(n) for n in range(30)])
    writer.write([b'{"type":"feedback","request_id":"r99","tenant":"t"}\n', b"{not json\n"])
    writer.close()
    assert find_interaction(tmp_path, "r3", "t")
    assert not find_interaction(tmp_path, "r3", "other")
    assert not find_interaction(tmp_path, "r99", "t")  # a feedback line is not an interaction
    assert not find_interaction(tmp_path, "r300", "t")


# the capture ---------------------------------------------------------------------------------------


def caller(**metadata: str) -> Caller:
    key = new_key("sk-gw-test", metadata=metadata)
    return Caller(key=key, subject=f"key:{key.id}", limits=KeyLimits())


def record(request_id: str = "req_1") -> RequestRecord:
    return RequestRecord(request_id, "POST", "/v1/chat/completions", 0.0, model="chat", route="default",
                         worker="w1", prompt_tokens=5, completion_tokens=2)


def test_opt_in_comes_from_the_key_then_the_route() -> None:
    assert InteractionCapture.opted_in(caller(capture="true"), False)
    assert not InteractionCapture.opted_in(caller(capture="false"), True)  # the tenant's opt-out wins
    assert InteractionCapture.opted_in(caller(team="a"), True)
    assert not InteractionCapture.opted_in(caller(team="a"), False)
    anonymous = Caller(key=None, subject="ip:127.0.0.1", limits=KeyLimits())
    assert not InteractionCapture.opted_in(anonymous, False) and InteractionCapture.opted_in(anonymous, True)


def test_route_opt_in_reads_the_rule_then_the_model() -> None:
    catalog = parse_catalog("""
models: [{name: chat, capture: true}, {name: quick}, {name: other}]
routing:
  default_model: chat
  routes:
    - {pattern: quick, model: quick, name: quick-rule, capture: true}
    - {pattern: never, model: chat, capture: false}
    - {pattern: other, model: other}
""")

    def routed(model: str, route: str, fallback_from: str | None = None) -> RequestRecord:
        r = record()
        r.model, r.route, r.fallback_from = model, route, fallback_from
        return r

    capture = InteractionCapture()
    cases = [(routed("quick", "quick-rule"), True), (routed("chat", "routes[1]"), False),
             (routed("chat", "default"), True), (routed("other", "routes[2]"), False),
             (routed("other", "explicit", fallback_from="chat"), True)]
    for routed_record, expected in cases:
        route = routed_record.route
        assert route_opt_in(catalog, routed_record, route) is expected
        assert capture.wants(caller(), catalog, routed_record, route=route) is expected
        assert capture.wants(caller(capture="true"), catalog, routed_record, route=route)
        assert not capture.wants(caller(capture="false"), catalog, routed_record, route=route)


async def test_nothing_is_queued_without_opt_in(tmp_path: Path) -> None:
    capture = InteractionCapture(CaptureConfig(directory=str(tmp_path / "c")))
    await capture.start()
    reply = Reply(headers={}, body=b'{"choices": []}')
    assert capture.wrap(reply, request_body={"messages": []}, record=record(), caller=caller(),
                        endpoint="chat/completions", opted_in=False) is reply
    await capture.close()
    assert capture.captured == 0 and not (tmp_path / "c").exists()


async def test_streams_pass_through_unchanged_and_are_kept_only_when_done(tmp_path: Path) -> None:
    capture = InteractionCapture(CaptureConfig(directory=str(tmp_path)))
    await capture.start()
    head = {"id": "c1", "model": "m"}
    events = sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Mail me: a@b.co"}}]},
                 {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, b"[DONE]")

    async def source(items: list[bytes]) -> AsyncIterator[bytes]:
        for item in items:
            yield item

    body = {"model": "upstream-id", "stream_options": {"include_usage": True}, "stream": True,
            "messages": [{"role": "user", "content": "I am x@y.org"}]}
    whole = capture.wrap(Reply(headers={}, stream=source(events)), request_body=body, record=record("req_done"),
                         caller=caller(team="t"), endpoint="chat/completions", opted_in=True)
    assert whole.stream is not None
    assert [item async for item in whole.stream] == events
    cut = capture.wrap(Reply(headers={}, stream=source(events[:1])), request_body=body, record=record("req_cut"),
                       caller=caller(team="t"), endpoint="chat/completions", opted_in=True)
    assert cut.stream is not None
    assert [item async for item in cut.stream] == events[:1]
    await capture.close()
    records = list(read_records(tmp_path))
    assert [r["request_id"] for r in records] == ["req_done"]
    captured = records[0]
    assert captured["request"] == {"stream": True, "messages": [{"role": "user", "content": f"I am {EMAIL}"}]}
    assert captured["response"]["choices"][0]["message"]["content"] == f"Mail me: {EMAIL}"
    assert captured["finish_reason"] == "stop" and captured["error"] is None
    assert captured["tenant"] == "t" and captured["model"] == "chat" and captured["worker"] == "w1"
    assert (captured["prompt_tokens"], captured["completion_tokens"]) == (5, 2)


async def test_feedback_needs_a_captured_interaction_of_the_same_tenant(tmp_path: Path) -> None:
    capture = InteractionCapture(CaptureConfig(directory=str(tmp_path), index_limit=2))
    await capture.start()
    mine = caller(team="t")
    for n in range(3):  # the index keeps 2: req_0 is found by reading the files
        capture.wrap(Reply(headers={}, body=b'{"choices": [{"message": {"content": "x"}}]}'),
                     request_body={"messages": [{"role": "user", "content": "q"}]}, record=record(f"req_{n}"),
                     caller=mine, endpoint="chat/completions", opted_in=True)
    await capture.flush()
    assert await capture.add_feedback(mine, "req_0", rating=5, label="good", comment="call 555-123-4567")
    assert await capture.add_feedback(caller(team="t"), "req_2", rating=1, label=None, comment=None)  # same team
    assert await capture.add_feedback(caller(team="u"), "req_1", rating=1, label=None, comment=None) is None
    assert await capture.add_feedback(mine, "req_9", rating=1, label=None, comment=None) is None
    await capture.close()
    feedback = [r for r in read_records(tmp_path) if r["type"] == "feedback"]
    assert [(f["request_id"], f["rating"], f["comment"]) for f in feedback] == [
        ("req_0", 5, f"call {PHONE}"), ("req_2", 1, None)]


# datasets ------------------------------------------------------------------------------------------


def interaction(request_id: str, prompt: str, answer: str, *, tenant: str = "t", ts: float = 1000.0,
                endpoint: str = "chat/completions", error: Any = None, finish: str = "stop") -> bytes:
    return msgspec.json.encode({
        "type": "interaction", "request_id": request_id, "tenant": tenant, "ts": ts, "endpoint": endpoint,
        "finish_reason": finish, "error": error,
        "request": {"messages": [{"role": "user", "content": prompt}], "temperature": 0.7},
        "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                  "finish_reason": finish}]}}) + b"\n"


def feedback(request_id: str, rating: int, label: str | None = None, *, tenant: str = "t", ts: float = 2000.0) -> bytes:
    return msgspec.json.encode({"type": "feedback", "request_id": request_id, "tenant": tenant, "ts": ts,
                                "rating": rating, "label": label}) + b"\n"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    writer = CaptureWriter(tmp_path, file_bytes=600, max_bytes=1_000_000)
    writer.write([
        interaction("a", "Tip?", "Drink water."), interaction("b", "Tip?", "Sleep more."),
        interaction("c", "Tip?", "Whatever."), interaction("d", "Joke?", "No."),
        interaction("e", "Story?", "Once", finish="length"), interaction("f", "Broken?", "", error={"message": "x"}),
        interaction("g", "Old?", "Old answer.", ts=10.0), interaction("h", "Raw", "text", endpoint="completions"),
        interaction("i", "Tip?", "Drink water.", tenant="other"),
        feedback("a", 2, "meh", ts=1500.0), feedback("a", 5, "helpful"), feedback("b", 3, "helpful"),
        feedback("c", 1, "wrong"), feedback("d", 4), feedback("i", 1, "wrong", tenant="other"),
        feedback("b", 5, tenant="nobody"), b"{cut short\n"])
    writer.close()
    assert len(capture_files(tmp_path)) > 1
    return tmp_path


def test_stats_count_interactions_ratings_and_labels(store: Path) -> None:
    data = load(store)
    stats = describe(data)
    assert data.read.malformed == 1
    assert stats.interactions == 9 and stats.errors == 1 and stats.rated == 5
    assert stats.by_endpoint == {"chat/completions": 8, "completions": 1}
    assert stats.by_rating == {5: 1, 3: 1, 1: 2, 4: 1}  # the latest rating of `a` counts
    assert stats.by_label == {"helpful": 2, "wrong": 2, "(none)": 1}
    assert describe(load(store, since=100.0)).interactions == 8


def exported(store: Path, fmt: str, selection: Selection, since: float | None = None
             ) -> tuple[list[dict[str, Any]], ExportStats]:
    lines: list[bytes] = []
    stats = export(load(store, since), fmt, selection, lines.append)
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    return [json.loads(line) for line in lines], stats


def answers(examples: list[dict[str, Any]]) -> list[str]:
    return [e["messages"][-1]["content"] for e in examples]


def test_chat_export(store: Path) -> None:
    examples, stats = exported(store, "chat-jsonl", Selection())
    assert answers(examples) == ["Drink water.", "Sleep more.", "Whatever.", "No.", "Old answer.", "Drink water."]
    assert examples[0] == {"messages": [{"role": "user", "content": "Tip?"},
                                        {"role": "assistant", "content": "Drink water."}]}
    assert stats.examples == 6 and stats.skipped == {"truncated": 1, "error": 1, "not chat": 1}
    assert stats.interactions == 9 and stats.rated == 5  # the stats come with the export
    rated, stats = exported(store, "chat-jsonl", Selection(min_rating=3))
    assert answers(rated) == ["Drink water.", "Sleep more.", "No."]
    assert stats.skipped == {"truncated": 1, "error": 1, "not chat": 1, "unrated": 1, "below min rating": 2}
    labelled, _ = exported(store, "chat-jsonl", Selection(labels=frozenset({"wrong"})))
    assert answers(labelled) == ["Whatever.", "Drink water."]
    recent, _ = exported(store, "chat-jsonl", Selection(), since=100.0)
    assert "Old answer." not in answers(recent)
    truncated, _ = exported(store, "chat-jsonl", Selection(include_truncated=True))
    assert "Once" in answers(truncated)


def test_preference_export_pairs_the_best_answer_with_worse_ones(store: Path) -> None:
    pairs, stats = exported(store, "preference-jsonl", Selection())
    prompt = [{"role": "user", "content": "Tip?"}]
    assert pairs == [
        {"prompt": prompt, "chosen": [{"role": "assistant", "content": "Drink water."}],
         "rejected": [{"role": "assistant", "content": "Sleep more."}]},
        {"prompt": prompt, "chosen": [{"role": "assistant", "content": "Drink water."}],
         "rejected": [{"role": "assistant", "content": "Whatever."}]}]
    assert stats.examples == 2 and stats.skipped["no pair"] == 1  # "Joke?" was rated once only
    none, stats = exported(store, "preference-jsonl", Selection(min_rating=6))
    assert none == [] and stats.skipped["below min rating"] == 2


def test_since_accepts_durations_and_dates() -> None:
    assert parse_since("7d", 1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_since("90m", 10_000.0) == 10_000.0 - 5400
    assert parse_since("2026-01-01", 0) == 1767225600.0
    assert parse_since("2026-01-01T01:00:00Z", 0) == 1767229200.0
    assert parse_since("2026-01-01T02:00:00+01:00", 0) == 1767229200.0
    with pytest.raises(ValueError):
        parse_since("yesterday", 0)


# settings ------------------------------------------------------------------------------------------


def test_capture_config_from_the_environment() -> None:
    assert CaptureConfig.from_settings(load_settings({})) == CaptureConfig()
    config = CaptureConfig.from_settings(load_settings({
        "GATEWAY_CAPTURE_DIR": "/data/captures", "GATEWAY_CAPTURE_FILE_BYTES": "1000",
        "GATEWAY_CAPTURE_MAX_BYTES": "5000", "GATEWAY_CAPTURE_REDACT": "ACME-[0-9]+"}))
    assert (config.directory, config.file_bytes, config.max_bytes, config.redact) == \
        ("/data/captures", 1000, 5000, ("ACME-[0-9]+",))
    for env in ({"GATEWAY_CAPTURE_FILE_BYTES": "lots"}, {"GATEWAY_CAPTURE_MAX_BYTES": "0"},
                {"GATEWAY_CAPTURE_FILE_BYTES": "2000", "GATEWAY_CAPTURE_MAX_BYTES": "1000"},
                {"GATEWAY_CAPTURE_REDACT": "(a"}):
        with pytest.raises(ValueError):
            load_settings(env)


def test_capture_settings() -> None:
    settings = dataclasses.asdict(load_settings({"GATEWAY_CAPTURE_DIR": "/data/c",
                                                 "GATEWAY_CAPTURE_REDACT": '["a+", "b{2,3}"]'}))
    assert settings["capture_dir"] == "/data/c" and settings["capture_redact"] == ("a+", "b{2,3}")
    assert dataclasses.asdict(load_settings({}))["capture_max_bytes"] == 1024 ** 3
    for env in ({"GATEWAY_CAPTURE_REDACT": "(?<=x)y"}, {"GATEWAY_CAPTURE_FILE_BYTES": "2000",
                                                       "GATEWAY_CAPTURE_MAX_BYTES": "1000"}):
        with pytest.raises(SettingsError):
            load_settings(env)


def dataset(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    dataset_cli.add_arguments(parser)
    return dataset_cli.run(parser.parse_args(argv))


def test_dataset_stats_and_export_to_standard_output(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dataset("stats", "--dir", str(store)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"captures: {store} ({len(capture_files(store))} file(s), 1 malformed line(s))"
    assert out[1:] == ["interactions: 9 (chat/completions 8, completions 1), errors 1, rated 5",
                       "by rating: 5: 1, 4: 1, 3: 1, 1: 2", "by label: helpful: 2, wrong: 2, (none): 1"]
    assert dataset("export", "--dir", str(store), "--format", "preference-jsonl", "--since", "1970-01-01T00:01") == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["rejected"][0]["content"] for line in captured.out.splitlines()] == [
        "Sleep more.", "Whatever."]
    assert "wrote 2 preference-jsonl example(s) to standard output" in captured.err


def test_dataset_refuses_a_missing_directory_and_a_bad_since(tmp_path: Path, store: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert dataset("stats", "--dir", str(tmp_path / "nowhere")) == 2
    assert "no capture directory" in capsys.readouterr().err
    assert dataset("export", "--dir", str(store), "--since", "last tuesday") == 2
    assert "--since 'last tuesday'" in capsys.readouterr().err
