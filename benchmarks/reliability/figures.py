"""The eighteen reliability figures of docs/reliability.md: each scenario, what must hold, and the command
that reproduces it when no record names its tests (the soak)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Figure:
    number: int
    scenario: str
    must_hold: str
    command: str
    """How to reproduce it when no record names its test (the soak)."""


FIGURES = (
    Figure(
        1,
        "200 concurrent non-streaming requests; one of three workers is killed",
        "≥ 99.9 % succeed; retries land on other workers, within the retry budget; the dead worker gets no "
        "new traffic within 1 s or 5 failures",
        "pytest -m figure tests/service/test_resilience.py",
    ),
    Figure(
        2,
        "100 streams; the worker serving a third of them is killed, or freezes",
        "its clients get an SSE error event then `[DONE]` within 2 s (killed) or the idle timeout + 10 % "
        "(frozen); no silent truncation, no duplicated tokens; all other streams complete",
        "pytest tests/reliability/test_worker_lost_mid_stream.py",
    ),
    Figure(
        3,
        "clients disconnect before the first byte, mid-stream, during a non-streaming call",
        "the upstream connection closes within 500 ms; in-flight gauges back to 0 within 2 s; logged as 499",
        "pytest -m figure tests/service/test_disconnects.py",
    ),
    Figure(
        4,
        "3 gateway replicas, a key limited to 100 requests/min, concurrent clients",
        "exactly 100 admitted; `Retry-After` correct; no 429 for other keys",
        "pytest -m figure tests/service/test_limits_across_replicas.py",
    ),
    Figure(
        5,
        "token budget (reserve, then reconcile) with failures and disconnects",
        "the counter ends equal to the tokens used; overshoot at most one reservation",
        "pytest -m figure tests/service/test_limits_across_replicas.py",
    ),
    Figure(
        6,
        "Redis paused, then killed, under load",
        "fail-open: no 5xx, per-replica limits; fail-closed: 503 with `Retry-After`; recovery within 5 s",
        "pytest -m figure tests/service/test_limits_across_replicas.py",
    ),
    Figure(
        7,
        "identical requests from two tenants",
        "no cross-tenant cache hit; `Cache-Control: no-store` / `no-cache` honoured",
        "pytest -m figure tests/service/test_cache.py",
    ),
    Figure(
        8,
        "100 identical requests on a cold cache; streams cut midway",
        "one upstream call per burst (coalesced); cut or failed streams leave no cache entry",
        "pytest -m figure tests/service/test_cache.py",
    ),
    Figure(
        9,
        "5 times capacity with a bounded queue",
        "excess gets 503 + `Retry-After` fast (p99 ≤ 50 ms); accepted p99 ≤ twice unloaded; memory back to baseline",
        "pytest tests/reliability/test_overload.py",
    ),
    Figure(
        10,
        "workers that never answer, stall after 3 chunks, or exceed the deadline",
        "504 at the timeout ± 10 %; an error event at the idle timeout; total ≤ deadline + 100 ms even with retries",
        "pytest tests/reliability/test_timeouts.py",
    ),
    Figure(
        11,
        "SIGTERM with streams and non-streaming calls in flight",
        "readiness fails within 1 s; non-streaming calls complete; open streams get an error event at the "
        "deadline; exit within drain + 2 s",
        "pytest tests/reliability/test_shutdown.py",
    ),
    Figure(
        12,
        "every route with missing, wrong, revoked and expired keys; user keys on admin routes",
        "401 / 403 every time; revocation on all replicas within 5 s; keys stored only as hashes",
        "pytest -m figure tests/service/test_auth.py tests/service/test_limits_across_replicas.py",
    ),
    Figure(
        13,
        "the gateway at DEBUG log level",
        "no API key, upstream credential or `Authorization` header in logs, error bodies or `/metrics`",
        "pytest -m figure tests/service/test_observability.py",
    ),
    Figure(
        14,
        "schemathesis over the OpenAPI schema, oversize bodies and headers, SSRF attempts",
        "no 5xx from bad input; 413 / 431 for oversize; no outbound call to a client-supplied URL; the "
        "client's `Authorization` never reaches workers",
        "pytest tests/reliability/test_fuzzing.py",
    ),
    Figure(
        15,
        "one-hour soak at half capacity with 1 % injected faults",
        "memory drift < 5 %/h; file descriptors stable; p99 drift < 10 %; every Redis key has a TTL; "
        "metrics equal what clients saw",
        "python -m benchmarks.soak",
    ),
    Figure(
        16,
        "a gateway running a local worker, streams open: SIGTERM or SIGINT to its process group, SIGTERM to "
        "the gateway alone, or to the gateway and its worker at once (systemd's default)",
        "the streams finish or end with an error event then `[DONE]`; the gateway stops its worker itself "
        "(unless the signal did) and exits within drain + 2 s; no worker process is left, none restarted",
        "pytest tests/reliability/test_local_worker_shutdown.py",
    ),
    Figure(
        17,
        "three gateway replicas on a Redis Cluster (3 primaries, 3 replicas), a key limited to N requests/min, "
        "load running, the primary holding the key's counters killed; two tenants asking the same questions",
        "at most N x (1 + replicas) admitted in the minute (Redis's count plus what each replica admitted "
        "alone while it could not reach Redis, fail-open); no 5xx; no cross-tenant cache hit; recovery "
        "time recorded",
        "pytest tests/reliability/test_redis_failover.py",
    ),
    Figure(
        18,
        "the same with Sentinel (a primary, a replica, 3 Sentinels): the primary killed, Sentinel promotes "
        "the replica",
        "as figure 17",
        "pytest tests/reliability/test_redis_failover.py",
    ),
)
