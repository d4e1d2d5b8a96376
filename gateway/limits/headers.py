"""How an admission's limits are told to the client, in the headers of its answer (or of its 429): the
names and formats of the API the client speaks, so its SDK reads them.

- OpenAI's (every surface but Anthropic's): `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
  `x-ratelimit-reset-requests` as a duration (`20ms`, `1s`, `6m0s`), and the same for `tokens`.
- Anthropic's (`/v1/messages`): `anthropic-ratelimit-requests-limit`, `-requests-remaining`,
  `-requests-reset` as an RFC 3339 time (UTC, whole seconds, rounded up), and the same for `tokens`. The
  gateway's token limit counts input and output together, so there are no `-input-tokens-*` and
  `-output-tokens-*` figures.

Only the limits the caller has are told. The 429's `retry-after` (and `retry-after-ms`), which both
APIs' SDKs read, are the admission's business (`gateway.inference.admission`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from gateway.limits.decisions import Admission

RateLimitHeaders = Callable[[Admission], dict[str, str]]
"""An admission's headers, in one API's names."""


def duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1s`, `6m0s`."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60}s"


def openai_headers(admission: Admission) -> dict[str, str]:
    headers: dict[str, str] = {}
    for kind, limit, remaining, reset in _limits(admission):
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        headers[f"x-ratelimit-reset-{kind}"] = duration(reset)
    return headers


def anthropic_headers(admission: Admission) -> dict[str, str]:
    headers: dict[str, str] = {}
    now = time.time()
    for kind, limit, remaining, reset in _limits(admission):
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
        headers[f"anthropic-ratelimit-{kind}-reset"] = _rfc3339(now + reset)
    return headers


def _limits(admission: Admission) -> Iterator[tuple[str, int, int, float]]:
    """(kind, limit, remaining, seconds to reset) of each limit the caller has: requests, tokens."""
    for kind, limit, remaining, reset in (
        ("requests", admission.requests_limit, admission.requests_remaining, admission.requests_reset_s),
        ("tokens", admission.tokens_limit, admission.tokens_remaining, admission.tokens_reset_s),
    ):
        if limit is not None:
            yield kind, limit, max(0, remaining or 0), reset or 0.0


def _rfc3339(timestamp: float) -> str:
    """`2025-01-15T14:24:00Z`: the second at or after `timestamp`, in UTC."""
    return datetime.fromtimestamp(math.ceil(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
