"""Usage per key and day, counted in memory (`gateway.auth.key_usage`): what a tally adds up, what a flush
takes and puts back, the days it keeps, and the rows a read returns."""

from __future__ import annotations

import datetime as dt

from gateway.auth import DayUsage, MemoryUsageStore, ModelUsage
from gateway.auth.key_usage import DAY_S, RETENTION_DAYS, UsageTally, day_name, day_of, usage_rows

NOON = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC).timestamp()


class Clock:
    """Unix time that a test moves by hand."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_days_are_whole_utc_days_named_by_their_date() -> None:
    assert day_name(day_of(NOON)) == "2026-12-06"
    assert day_name(day_of(NOON - 12 * 3600)) == "2026-12-06"  # midnight UTC starts the day
    assert day_name(day_of(NOON - 12 * 3600 - 1)) == "2026-12-05"
    assert day_name(0) == "1970-01-01"


def test_a_tally_adds_up_requests_tokens_and_errors_per_key_day_and_model() -> None:
    clock = Clock()
    tally = UsageTally(clock=clock)
    tally.count("key_a", "chat", 10, 5, False)
    tally.count("key_a", "chat", 7, 3, True)
    tally.count("key_a", "", 0, 0, True)
    tally.count("key_b", "chat", 1, 1, False)
    clock.now += DAY_S
    tally.count("key_a", "chat", 2, 2, False)
    today = day_of(clock.now)
    assert tally.of_key("key_a") == {(today - 1, "chat"): [2, 17, 8, 1], (today - 1, ""): [1, 0, 0, 1],
                                     (today, "chat"): [1, 2, 2, 0]}
    assert tally.of_key("key_c") == {}


def test_taking_empties_the_tally_and_adding_back_loses_nothing() -> None:
    tally = UsageTally(clock=Clock())
    tally.count("key_a", "chat", 10, 5, False)
    taken = tally.take()
    assert tally.take() == {}
    tally.count("key_a", "chat", 1, 1, True)  # counted while the batch was away
    tally.add(taken)
    day = day_of(NOON)
    assert tally.take() == {("key_a", day, "chat"): [2, 11, 6, 1]}


def test_a_tally_with_a_retention_drops_old_days_when_a_day_starts() -> None:
    clock = Clock()
    tally = UsageTally(clock=clock, retention_days=2)
    tally.count("key_a", "chat", 1, 1, False)
    clock.now += DAY_S
    tally.count("key_a", "chat", 2, 2, False)
    assert len(tally.of_key("key_a")) == 2
    clock.now += DAY_S
    tally.count("key_a", "chat", 3, 3, False)
    assert sorted(day for day, _model in tally.of_key("key_a")) == [day_of(clock.now) - 1, day_of(clock.now)]


def test_rows_cover_every_day_asked_oldest_first_with_totals_and_models() -> None:
    today = day_of(NOON)
    rows = usage_rows(today - 2, today, [(today, "chat", [2, 20, 10, 0]), (today, "quick", [1, 5, 1, 1]),
                                         (today, "chat", [1, 1, 1, 1]), (today - 5, "chat", [9, 9, 9, 9])])
    assert [row.day for row in rows] == ["2026-12-04", "2026-12-05", "2026-12-06"]
    assert rows[0] == DayUsage(day="2026-12-04", models={})
    assert rows[2] == DayUsage(day="2026-12-06", requests=4, prompt_tokens=26, completion_tokens=12, errors=2,
                               models={"chat": ModelUsage(requests=3, prompt_tokens=21, completion_tokens=11, errors=1),
                                       "quick": ModelUsage(requests=1, prompt_tokens=5, completion_tokens=1,
                                                           errors=1)})


async def test_the_memory_store_reads_its_own_counts() -> None:
    clock = Clock()
    store = MemoryUsageStore(clock=clock)
    await store.start()
    store.count("key_a", "chat", 10, 5, False)
    clock.now += DAY_S
    store.count("key_a", "chat", 4, 4, True)
    store.count("key_b", "chat", 1, 1, False)
    rows = await store.days("key_a", 3)
    assert [(r.day, r.requests, r.prompt_tokens, r.completion_tokens, r.errors) for r in rows] == [
        ("2026-12-05", 0, 0, 0, 0), ("2026-12-06", 1, 10, 5, 0), ("2026-12-07", 1, 4, 4, 1)]
    clock.now += RETENTION_DAYS * DAY_S
    store.count("key_a", "chat", 1, 1, False)
    assert sum(r.requests for r in await store.days("key_a", RETENTION_DAYS)) == 1  # the old days are gone
    await store.close()
