"""The log's processors: the redactor's one-look fast path scrubs exactly what the value-by-value scrub
does, the timestamp is structlog's ISO UTC one, the msgspec renderer writes what the standard library's
JSON holds; a configured process writes one JSON line per call, `log_line` the same line as structlog
(and through structlog while a test captures the log), and the console shows no frame locals."""

from __future__ import annotations

import datetime
import json
import random
import re
import subprocess
import sys
from typing import Any

import structlog

from gateway.observability.logs import REDACTED, JsonLineRenderer, SecretRedactor, UtcTimestamper

SECRETS = ("sk-gw-admin-0123456789", "worker-secret-0123456789", "tok/with+odd=chars")
PIECES = ("", "/v1/chat/completions", "req_1a2b3c4d5e", "sk-", "sk-abcdef12", "xsk-abcdef12", "SK-abcdef12",
          "Bearer abc.def", "BEARER  x", "bEaReR\ty", "bearer", "task-1", "\u017fk-abcdef12", *SECRETS, " ", "\"", ",")


def exact(redactor: SecretRedactor, event: dict[str, Any]) -> dict[str, Any]:
    """The value-by-value scrub, as the redactor did it before its fast path."""
    return {k: redactor.scrub(v) if isinstance(v, str | dict | list | tuple) else v for k, v in event.items()}


def test_fast_path_redacts_exactly_like_the_value_by_value_scrub() -> None:
    redactor, rng = SecretRedactor(SECRETS), random.Random(7)
    for _ in range(3000):
        event: dict[str, Any] = {"event": "request", "status": 200, "duration_ms": 1.5, "stream": True,
                                 "tokens": None}
        for field in ("request_id", "method", "path", "model", "error"):
            event[field] = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 4)))
        if rng.random() < 0.1:
            event["nested"] = {"h": [rng.choice(PIECES), (rng.choice(PIECES),)]}
        expected = exact(redactor, dict(event))
        assert redactor(None, "info", dict(event)) == expected
        for value in expected.values():
            assert not any(secret in str(value) for secret in SECRETS)


def test_request_line_without_secrets_is_left_as_is() -> None:
    event = {"request_id": "req_1", "method": "POST", "path": "/v1/chat/completions", "status": 200,
             "key_id": "key_llm_api_key", "event": "request"}
    assert SecretRedactor(SECRETS)(None, "info", dict(event)) == event
    leaked = {**event, "request_id": "sk-abcdef0123456", "path": f"/v1/{SECRETS[1]}/x"}
    assert SecretRedactor(SECRETS)(None, "info", leaked) == {**event, "request_id": REDACTED,
                                                             "path": f"/v1/{REDACTED}/x"}


def test_timestamp_is_iso_utc_like_structlog() -> None:
    stamp, reference = UtcTimestamper(), structlog.processors.TimeStamper(fmt="iso", utc=True)
    shape = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")
    for _ in range(3):
        before = datetime.datetime.now(tz=datetime.UTC)
        value = stamp(None, "info", {})["timestamp"]
        after = datetime.datetime.now(tz=datetime.UTC)
        theirs = reference(None, "info", {})["timestamp"]
        assert shape.fullmatch(value) and shape.fullmatch(theirs), (value, theirs)
        assert before <= datetime.datetime.fromisoformat(value.replace("Z", "+00:00")) <= after


def test_msgspec_renderer_writes_what_the_standard_library_json_holds() -> None:
    class Custom:
        def __repr__(self) -> str:
            return "<custom>"

    event = {"request_id": "r", "status": 200, "duration_ms": 5.043, "stream": True, "name": "é ✓",
             "problems": ["a", "b"], "nested": {"k": 1}, "obj": Custom(), "event": "request"}
    line = JsonLineRenderer()(None, "info", dict(event))
    assert isinstance(line, bytes) and b"\n" not in line
    assert json.loads(line) == {**event, "obj": "<custom>"}
    assert list(json.loads(line)) == list(event)  # same order
    assert JsonLineRenderer(as_bytes=False)(None, "info", dict(event)) == line.decode()
    surrogate = JsonLineRenderer()(None, "info", {"bad": "\udc80", "event": "x"})  # msgspec refuses it
    assert json.loads(surrogate) == {"bad": "\udc80", "event": "x"}


SCRIPT = """
import json, sys, structlog
from structlog.testing import capture_logs
from gateway.observability.logs import configure_logging, log_line
configure_logging("info", secrets=["worker-secret-0123456789"], console={console})
log = structlog.get_logger("t")
log.debug("hidden")
log_line("t", "debug", "hidden", {{"a": 1}})
log.info("request", request_id="r1", path="/v1/chat/completions", status=200, duration_ms=1.25)
log_line("t", "info", "request", {{"request_id": "r1", "path": "/v1/chat/completions", "status": 200,
                                  "duration_ms": 1.25}})
log_line("t", "info", "request", {{"request_id": "sk-abcdef0123456", "path": "/v1/worker-secret-0123456789",
                                  "status": 404}})
def fail(headers):
    raise ValueError("upstream said Bearer worker-secret-0123456789")
try:
    fail({{"authorization": "Bearer local-value-in-a-frame"}})
except ValueError as exc:
    log.error("unhandled_exception", path="/x", exc_info=exc)
with capture_logs() as captured:
    log_line("t", "info", "request", {{"request_id": "captured"}})
print(json.dumps(captured))
"""


def run(console: bool) -> str:
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(console=console)], capture_output=True,
                            text=True, timeout=30, check=True)
    assert json.loads(result.stdout) == [{"request_id": "captured", "event": "request", "log_level": "info"}]
    return result.stderr


def test_json_lines_on_stderr_one_per_call_with_secrets_redacted() -> None:
    output = run(console=False)
    assert "hidden" not in output and "captured" not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["event"] for line in lines] == ["request", "request", "request", "unhandled_exception"]
    through_structlog, fast = lines[0], lines[1]
    assert list(fast) == ["request_id", "path", "status", "duration_ms", "event", "level", "timestamp"]
    assert fast["request_id"] == "r1" and fast["status"] == 200 and fast["level"] == "info"
    assert {**through_structlog, "timestamp": ""} == {**fast, "timestamp": ""}
    assert list(through_structlog) == list(fast)
    assert lines[2]["request_id"] == REDACTED and lines[2]["path"] == f"/v1/{REDACTED}"
    assert "ValueError" in lines[3]["exception"] and lines[3]["level"] == "error"
    text = json.dumps(lines)
    assert "worker-secret-0123456789" not in text and "sk-abcdef0123456" not in text


def test_console_tracebacks_show_no_locals_and_no_secrets() -> None:
    text = run(console=True)
    assert "request" in text and "ValueError" in text and "unhandled_exception" in text
    assert "hidden" not in text and "captured" not in text
    assert "local-value-in-a-frame" not in text  # frames' local variables are never printed
    assert "worker-secret-0123456789" not in text and "sk-abcdef0123456" not in text
