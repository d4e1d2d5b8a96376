"""Overload protection's pure parts: the waiting lines (bounded, first come first served, a freed slot to
the oldest waiter of the worker's models) and the catalog fields that configure them."""

from __future__ import annotations

import pytest

from routing.catalog import CatalogError, QueueSpec, parse_catalog
from routing.wait_queue import QueueLimits, WaitingLines, queue_limits


def test_a_line_is_bounded_and_first_come_first_served() -> None:
    lines: WaitingLines[str] = WaitingLines()
    assert lines.join("chat", "a", max_waiting=2) and lines.join("chat", "b", max_waiting=2)
    assert not lines.join("chat", "c", max_waiting=2)  # full: refused, nothing changes
    assert lines.depth("chat") == 2
    assert lines.next_for(["chat"]) == ("chat", "a")
    assert lines.join("chat", "c", max_waiting=2)
    assert [lines.next_for(["chat"]), lines.next_for(["chat"]), lines.next_for(["chat"])] == \
        [("chat", "b"), ("chat", "c"), None]


def test_no_waiting_allowed_refuses_everyone() -> None:
    lines: WaitingLines[str] = WaitingLines()
    assert not lines.join("chat", "a", max_waiting=0)
    assert lines.depth("chat") == 0


def test_a_freed_slot_goes_to_the_oldest_waiter_among_the_workers_models() -> None:
    lines: WaitingLines[str] = WaitingLines()
    lines.join("quick", "q1", max_waiting=5)
    lines.join("chat", "c1", max_waiting=5)
    lines.join("quick", "q2", max_waiting=5)
    assert lines.next_for(["chat", "quick"]) == ("quick", "q1")
    assert lines.next_for(["chat"]) == ("chat", "c1")  # a worker serving only chat
    assert lines.next_for(["embed"]) is None
    assert lines.next_for(["chat", "quick"]) == ("quick", "q2")


def test_a_waiter_that_gives_up_leaves_its_line() -> None:
    lines: WaitingLines[object] = WaitingLines()
    first, second = object(), object()
    lines.join("chat", first, max_waiting=5)
    lines.join("chat", second, max_waiting=5)
    assert lines.leave("chat", first)
    assert not lines.leave("chat", first)  # already gone
    assert not lines.leave("other", second)
    assert lines.next_for(["chat"]) == ("chat", second)


def test_queue_limits_default_to_the_models_capacity() -> None:
    assert queue_limits(None, capacity=6) == QueueLimits(max_waiting=6, max_wait_s=10.0, retry_after_s=1.0)
    assert queue_limits(QueueSpec(max_waiting=0, max_wait=2.5, retry_after=3), capacity=6) == \
        QueueLimits(max_waiting=0, max_wait_s=2.5, retry_after_s=3)


LIMITED = """
models:
  - name: chat
    queue: {max_waiting: 8, max_wait: 5, retry_after: 2}
  - name: quick
workers:
  - name: a
    kind: vllm
    base_url: http://a:8000/v1
    max_concurrent: 4
    models: [chat]
  - name: b
    kind: vllm
    base_url: http://b:8000/v1
    models: [quick]
"""


def test_the_catalog_takes_capacities_and_queues() -> None:
    catalog = parse_catalog(LIMITED)
    assert catalog.workers[0].max_concurrent == 4 and catalog.workers[1].max_concurrent is None
    assert catalog.models[0].queue == QueueSpec(max_waiting=8, max_wait=5, retry_after=2)
    assert catalog.models[1].queue is None


@pytest.mark.parametrize(("change", "problem"), [
    (("max_concurrent: 4", "max_concurrent: 0"), "$.workers[0].max_concurrent: Expected `int` >= 1"),
    (("max_wait: 5", "max_wait: 0"), "$.models[0].queue.max_wait: Expected `float` > 0.0"),
    (("max_waiting: 8", "max_waiting: -1"), "$.models[0].queue.max_waiting: Expected `int` >= 0"),
    (("retry_after: 2", "retry_afterr: 2"), "$.models[0].queue: Object contains unknown field `retry_afterr`"),
    (("  - name: quick\n", "  - name: quick\n    queue: {max_wait: 1}\n"),
     "$.models[1].queue: no worker of 'quick' has `max_concurrent`, so no request would ever wait"),
])
def test_bad_capacities_and_queues_are_refused_with_path_and_reason(change: tuple[str, str], problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(LIMITED.replace(*change))
    assert caught.value.problems == [problem]
