"""The retry budget (20 % of active requests, at least 3) and full-jitter backoff bounds."""

from __future__ import annotations

import random

import pytest

from routing.retry_budget import RetryBudget, backoff_s


def test_a_quiet_gateway_may_still_retry_three_at_once() -> None:
    budget = RetryBudget()
    assert budget.limit(0) == 3
    assert [budget.allows(1, r) for r in range(5)] == [True, True, True, False, False]


def test_retries_are_capped_at_a_fifth_of_active_requests() -> None:
    budget = RetryBudget()
    assert budget.limit(100) == 20
    assert budget.allows(100, 19)
    assert not budget.allows(100, 20)
    assert budget.limit(17) == 3  # 3.4 rounds down, and the minimum is 3 anyway
    assert RetryBudget(ratio=0.29, minimum=0).limit(100) == 29  # no float rounding loss


def test_budget_arguments_are_validated() -> None:
    with pytest.raises(ValueError):
        RetryBudget(ratio=-0.1)
    with pytest.raises(ValueError):
        RetryBudget(minimum=-1)
    assert not RetryBudget(ratio=0.0, minimum=0).allows(1000, 0)


def test_backoff_is_full_jitter_under_an_exponential_bound_capped() -> None:
    rng = random.Random(7)
    for attempt, bound in [(0, 0.025), (1, 0.05), (2, 0.1), (3, 0.2), (4, 0.25), (10, 0.25), (10_000, 0.25)]:
        draws = [backoff_s(attempt, rng) for _ in range(500)]
        assert all(0.0 <= d <= bound for d in draws)
        assert max(draws) > 0.9 * bound and min(draws) < 0.1 * bound  # spread over the whole range


def test_backoff_honours_base_and_cap_and_is_reproducible() -> None:
    assert all(backoff_s(3, random.Random(s), base=0.1, cap=1.0) <= 0.8 for s in range(100))
    assert backoff_s(2, random.Random(1)) == backoff_s(2, random.Random(1))
    assert backoff_s(5, random.Random(1), cap=0.0) == 0.0
    with pytest.raises(ValueError):
        backoff_s(-1, random.Random(1))
