"""How much retrying the gateway may do: Envoy's retry budget and full-jitter exponential backoff.

The budget caps concurrent retries at `ratio` of the active requests, but always allows `minimum`
(Envoy: 20 %, at least 3), so a failing fleet is not buried under a retry storm while a quiet one
can still retry. The backoff spreads retries with full jitter (AWS's "Exponential Backoff and
Jitter": a uniform draw up to the exponential bound) so clients that failed together do not retry
together. The caller still keeps every try inside the request's overall deadline.
"""

from __future__ import annotations

import random

_MAX_DOUBLINGS = 60  # beyond this the bound is the cap anyway; keeps 2 ** attempt from overflowing a float

DEFAULT_BACKOFF_BASE_S = 0.025
DEFAULT_BACKOFF_CAP_S = 0.25


class RetryBudget:
    """Whether one more retry may start now."""

    def __init__(self, ratio: float = 0.2, minimum: int = 3) -> None:
        if ratio < 0 or minimum < 0:
            raise ValueError("the retry budget's ratio and minimum must not be negative")
        self.ratio = ratio
        self.minimum = minimum

    def limit(self, active_requests: int) -> int:
        """The most retries that may be in flight alongside `active_requests` (retries included)."""
        # The epsilon keeps e.g. 0.29 * 100 = 28.999… from losing a retry to float rounding.
        return max(self.minimum, int(self.ratio * active_requests + 1e-9))

    def allows(self, active_requests: int, retries_in_flight: int) -> bool:
        """True when a retry may start: `retries_in_flight` (not counting this one) is below the
        limit for `active_requests` (every request in flight to a worker, retries included)."""
        return retries_in_flight < self.limit(active_requests)


def backoff_s(attempt: int, rng: random.Random, base: float = DEFAULT_BACKOFF_BASE_S,
              cap: float = DEFAULT_BACKOFF_CAP_S) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry): a uniform draw from
    0 to min(cap, base * 2^attempt), so 25 ms, 50 ms, 100 ms, 200 ms, then 250 ms bounds."""
    if attempt < 0:
        raise ValueError("attempt must not be negative")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must not be negative")
    bound = min(cap, base * 2.0 ** min(attempt, _MAX_DOUBLINGS))
    return rng.uniform(0.0, bound)
