"""The surfaces suite's pure parts: which stream events carry content on each surface, the gaps and
bunching of a stream's content events, CPU rounds summed up into medians and ratios to chat, the share
of a profile inside the translation code, the report (tables, goals, the RESULTS.md section) and the
command line's options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.surfaces import parse_args, report
from benchmarks.surfaces.calls import CHAT, MESSAGES, RESPONSES, RESPONSES_STORED, answer_problem, event_type
from benchmarks.surfaces.cpu import CpuRow, Sample, summarize
from benchmarks.surfaces.instructions import InstructionRow, ratios
from benchmarks.surfaces.pacing import bunched_pct, gaps_ms
from benchmarks.surfaces.pacing import summarize as pacing_summary
from benchmarks.surfaces.profile import ProfileNote, compare_to_chat, self_samples, translation_share
from benchmarks.surfaces.run import Options, Result

STARTED = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)
MACHINE: dict[str, object] = {"nproc": 2, "cpu_model": "Test CPU", "load_average_at_start": [0.5, 0.4, 0.3]}


def test_each_surface_names_its_content_end_and_failure_events() -> None:
    assert event_type(CHAT, b'{"choices":[{"delta":{"content":"ok"}}]}') == "chunk"
    assert event_type(CHAT, b'{"choices":[{"delta":{"role":"assistant"}}]}') == ""
    assert event_type(CHAT, b'{"error":{"message":"cut"}}') == "error"
    assert event_type(CHAT, b"[DONE]") == "[DONE]"
    delta = b'{"type":"response.output_text.delta","delta":"ok","sequence_number":4}'
    assert event_type(RESPONSES, delta) == RESPONSES.content_event
    assert event_type(RESPONSES, b'{"type":"response.completed"}') in RESPONSES.end_events
    assert event_type(MESSAGES, b'{"type": "content_block_delta", "index": 0}') == MESSAGES.content_event
    assert event_type(MESSAGES, b'{"type":"message_stop"}') in MESSAGES.end_events


def test_the_bodies_ask_the_same_question_on_each_surface() -> None:
    assert CHAT.body(True)["stream_options"] == {"include_usage": True} and "stream_options" not in CHAT.body(False)
    assert RESPONSES.body(False)["store"] is False and RESPONSES_STORED.body(True)["store"] is True
    assert RESPONSES.body(True)["input"] == "Say ok" and RESPONSES.body(True)["max_output_tokens"] == 64
    assert MESSAGES.body(False)["messages"] == [{"role": "user", "content": "Say ok"}]
    assert MESSAGES.path == "/v1/messages" and RESPONSES_STORED.path == "/v1/responses"


def test_a_plain_answer_must_be_a_whole_answer_of_its_surface() -> None:
    assert answer_problem(CHAT, {"choices": [{}]}) == ""
    assert answer_problem(RESPONSES, {"status": "incomplete"}) == "status 'incomplete'"
    assert answer_problem(MESSAGES, {"type": "message", "content": [{"type": "text"}]}) == ""
    assert answer_problem(MESSAGES, {"type": "error"}) == "not a message with content"


def test_gaps_and_bunching_of_a_stream() -> None:
    times = [1.0, 1.02, 1.041, 1.042, 1.062]
    assert gaps_ms(times) == pytest.approx([20.0, 21.0, 1.0, 20.0])
    assert bunched_pct(gaps_ms(times)) == 25.0 and bunched_pct([]) == 0.0
    figures = pacing_summary("messages", [(0.99, times), (2.0, [2.003, 2.023])], ["HTTP 500: x"])
    assert (figures.streams, figures.errors, figures.gaps, figures.events_mean) == (3, 1, 5, 3.5)
    assert figures.gap_p50_ms == pytest.approx(20.0) and figures.gap_max_ms == 21.0
    assert figures.bunched_pct == 20.0 and figures.ttft_p50_ms == pytest.approx(3.0)  # nearest rank of 3 and 10 ms
    assert figures.first_error == "HTTP 500: x"


def _rows() -> list[CpuRow]:
    def row(surface: str, stream: bool, per_request_us: list[float]) -> CpuRow:
        samples = [Sample(100, round(us / 100), round(us * 100_000), 2.0) for us in per_request_us]
        return CpuRow(surface, stream, samples)

    rows = [
        row("chat", False, [500, 480, 520]),
        row("responses", False, [510, 530, 490]),
        row("messages", False, [600, 580, 640]),
        row("chat", True, [2500, 2400, 2600]),
        row("responses", True, [2600, 2700, 2650]),
        row("messages", True, [2750, 2800, 2700]),
    ]
    summarize(rows)
    return rows


def test_cpu_rounds_give_medians_spreads_and_ratios_to_chat_in_the_same_mode() -> None:
    rows = {(r.surface, r.stream): r for r in _rows()}
    chat = rows[("chat", False)]
    assert chat.us_per_request == 500.0 and chat.spread_pct == 8.0 and chat.ratio_to_chat == 1.0
    assert chat.stat_us_per_request == 500.0  # 5 ticks of 10 ms over 100 calls
    assert rows[("messages", False)].ratio_to_chat == 1.2
    assert rows[("responses", True)].ratio_to_chat == 1.06 and rows[("messages", True)].ratio_to_chat == 1.1


def _result() -> Result:
    streams = [(0.0, [0.002 + 0.02 * i for i in range(32)])]
    return Result(
        version="0.1.0 (abc123)",
        gateway_processes=1,
        cpu_rows=_rows(),
        pacing=[pacing_summary("chat", streams, []), pacing_summary("messages", streams, [])],
    )


def test_the_goals_hold_translated_calls_to_a_tenth_over_chat_and_no_bunched_events() -> None:
    text = report.goals_text(_result())
    assert "Messages plain 1.20x (**missed**)" in text and "Messages streamed 1.10x (met)" in text
    assert "Responses (store: false) streamed 1.06x (met)" in text
    assert "Messages 0.0% bunched, 32 of 32 events (met) (chat beside: 0.0% bunched)" in text


def test_the_tables_and_the_section() -> None:
    result = _result()
    assert "| Messages, plain | 600 | 1.20x | 600, 580, 640 | 10% | 600 | 1.20x | 0 |" in report.cpu_table(
        result.cpu_rows
    )
    assert "| Messages | `content_block_delta` | 1 | 32 | 20.00 | 20.00 | 20.0 | 0.0% | 2.0 | 0 |" in (
        report.pacing_table(result.pacing)
    )
    options = parse_args(["--requests", "200", "--rounds", "4"])
    text = report.markdown(STARTED, MACHINE, options, result, Path("/x/surfaces.json"))
    assert text.startswith("## API surfaces: translated Responses and Messages beside chat\n")
    assert "2 cores, Test CPU" in text and "`/x/surfaces.json`" in text and "[surfaces/README.md]" in text
    assert "4 rounds, each sending every call kind 200 times from 32 clients" in text


def test_instruction_counts_are_set_against_chat_in_the_same_mode_and_reported() -> None:
    rows = [
        InstructionRow("chat", False, 40, [1_900_000, 2_100_000]),
        InstructionRow("messages", False, 40, [2_300_000, 2_300_000]),
        InstructionRow("chat", True, 40, [10_000_000]),
        InstructionRow("responses", True, 40, [10_500_000]),
    ]
    ratios(rows)
    assert [r.ratio_to_chat for r in rows] == [1.0, 1.15, 1.0, 1.05]
    assert rows[0].per_call == 2_000_000
    assert "| Messages, plain | 2,300,000 | 1.15x | 2,300,000, 2,300,000 | 0 |" in report.instructions_table(rows)
    result = _result()
    result.instructions = rows
    assert "In instructions (callgrind): Messages plain 1.15x; Responses (store: false) streamed 1.05x." in (
        report.goals_text(result)
    )
    assert report.INSTRUCTIONS_NOTE in report.goals_text(result)  # Messages plain is over 1.10x
    rows[1].ratio_to_chat = 1.08
    assert report.INSTRUCTIONS_NOTE not in report.goals_text(result)
    options = parse_args(["--instructions", "40"])
    assert "40 calls of each kind" in report.markdown(STARTED, MACHINE, options, result, Path("/x/s.json"))


def test_the_share_of_a_profile_inside_the_translation_code() -> None:
    folded = "\n".join(
        [
            "main (gateway/app.py:1);events (gateway/surfaces/messages_stream.py:40);encode (msgspec/x.py:3) 30",
            "main (gateway/app.py:1);events (gateway/surfaces/messages_stream.py:40);relay (gateway/upstream/r.py:9) 60",  # noqa: E501
            "main (gateway/app.py:1);epoll_wait (libc.so.6) 500",
            "main (gateway/app.py:1);events (gateway/surfaces/messages_stream.py:80) 10",
        ]
    )
    share, top = translation_share(folded)
    assert share == 40.0
    assert top == [("events (gateway/surfaces/messages_stream.py)", 40.0)]


def test_the_command_line() -> None:
    quick = parse_args(["--quick", "--surfaces", "messages"])
    assert quick == Options(40, 1, 32, 4, ["chat", "messages"], 0.0, True)
    assert parse_args(["--profile", "--instructions", "20"]).instructions == 20
    with pytest.raises(SystemExit):
        parse_args(["--surfaces", "rerank"])


def test_a_translated_profile_is_set_against_chat_function_by_function() -> None:
    chat = self_samples(
        "main (gateway/app.py:1);send (uvicorn/h.py:5) 80\nmain (gateway/app.py:1);epoll_wait (libc.so.6) 900"
    )
    own = self_samples(
        "main (gateway/app.py:1);send (uvicorn/h.py:5) 90\nmain (gateway/app.py:1);_event (gateway/surfaces/r.py:3) 30"
    )
    note = ProfileNote("responses-stream")
    compare_to_chat(note, own, chat)
    assert note.more_than_chat_pct == 50.0
    assert note.extra_vs_chat == [("_event (gateway/surfaces/r.py)", 30), ("send (uvicorn/h.py)", 10)]
    result = _result()
    result.profiles = [note]
    assert "+50% samples against chat's, most in (self time) `_event (gateway/surfaces/r.py)` +30" in (
        "\n".join(report.profiles_text(result))
    )
