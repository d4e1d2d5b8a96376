"""The EVALSHA calls of admit.lua and settle.lua as RESP bytes, for `gateway.shared_state.redis_wire.RedisWire`.

Most of a call repeats from one request to the next: the script, a subject's keys, a key's limits.
Those parts are encoded once and kept (per subject, per limits); a request encodes only its lease,
its tokens and, for a settle, what it used.
"""

from __future__ import annotations

from importlib import resources

from gateway.auth.api_keys import KeyLimits
from gateway.limits.decisions import BUDGET_KEY_GRACE_S, CONCURRENCY_RETRY_S, Reservation
from gateway.shared_state.redis_wire import array_header, bulk, script_sha

_CALENDAR_LUA = resources.files(__package__).joinpath("calendar.lua").read_text()
ADMIT_LUA = _CALENDAR_LUA + resources.files(__package__).joinpath("admit.lua").read_text()
SETTLE_LUA = _CALENDAR_LUA + resources.files(__package__).joinpath("settle.lua").read_text()
ADMIT_SHA = script_sha(ADMIT_LUA)
SETTLE_SHA = script_sha(SETTLE_LUA)
KEY_COUNT = 5
_CACHED_MAX = 4096
"""Entries kept per cache (subjects, limits); past it a cache starts over."""

_ADMIT_HEAD = array_header(3 + KEY_COUNT + 13) + bulk("EVALSHA") + bulk(ADMIT_SHA) + bulk(KEY_COUNT)
_SETTLE_HEAD = array_header(3 + KEY_COUNT + 10) + bulk("EVALSHA") + bulk(SETTLE_SHA) + bulk(KEY_COUNT)
_MODES = {mode: bulk(mode) for mode in ("admit", "peek")}
_CANCEL = {True: bulk("1"), False: bulk("0")}


def _optional(value: int | None) -> bytes:
    return bulk("" if value is None else value)


class LimitCommands:
    """Encodes the script calls of one store (its key prefix, window and lease TTL)."""

    def __init__(self, prefix: str, window_s: float, lease_ttl_s: float) -> None:
        self._prefix = prefix
        self._window_s = window_s
        self._lease_ttl_s = lease_ttl_s
        self._subjects: dict[str, tuple[bytes, str]] = {}
        self._limits: dict[tuple[KeyLimits, float], bytes] = {}
        self._timing: dict[float, bytes] = {}

    def keys(self, subject: str, lease: str) -> list[str]:
        """KEYS of both scripts: requests log, token bucket, leases, budget counter base, cancel tombstone."""
        base = f"{self._prefix}rl:{{{subject}}}:"
        return [base + "req", base + "tok", base + "leases", base + "budget", f"{base}cancelled:{lease}"]

    def admit(self, mode: str, subject: str, lease: str, limits: KeyLimits, tokens: int,
              clock_offset_s: float) -> bytes:
        """admit.lua's ARGV: mode, lease, tokens, window_s, lease_ttl_s, clock_offset_s, requests_per_minute,
        tokens_per_minute, max_concurrent, token_budget, budget_period, concurrency_retry_s, budget_grace_s."""
        keys, base = self._subject(subject)
        return b"".join((_ADMIT_HEAD, keys, bulk(f"{base}cancelled:{lease}"), _MODES[mode], bulk(lease), bulk(tokens),
                         self._admit_tail(limits, clock_offset_s)))

    def settle(self, reservation: Reservation, actual_tokens: int, cancel: bool, clock_offset_s: float) -> bytes:
        """settle.lua's ARGV: actual_tokens, cancel, lease, estimate, tokens_per_minute, budget period label,
        budget period kind, window_s, lease_ttl_s, clock_offset_s."""
        keys, base = self._subject(reservation.subject)
        lease = reservation.lease
        return b"".join((_SETTLE_HEAD, keys, bulk(f"{base}cancelled:{lease}"), bulk(actual_tokens), _CANCEL[cancel],
                         bulk(lease), bulk(reservation.tokens), _optional(reservation.tokens_per_minute),
                         bulk(reservation.period or ""), bulk(reservation.budget_period or ""),
                         self._timing_args(clock_offset_s)))

    def _subject(self, subject: str) -> tuple[bytes, str]:
        """The first four keys, encoded, and the base of the fifth."""
        found = self._subjects.get(subject)
        if found is None:
            if len(self._subjects) >= _CACHED_MAX:
                self._subjects.clear()
            base = f"{self._prefix}rl:{{{subject}}}:"
            encoded = b"".join(bulk(base + name) for name in ("req", "tok", "leases", "budget"))
            found = self._subjects[subject] = (encoded, base)
        return found

    def _timing_args(self, clock_offset_s: float) -> bytes:
        found = self._timing.get(clock_offset_s)
        if found is None:
            if len(self._timing) >= _CACHED_MAX:
                self._timing.clear()
            found = self._timing[clock_offset_s] = (bulk(self._window_s) + bulk(self._lease_ttl_s)
                                                    + bulk(clock_offset_s))
        return found

    def _admit_tail(self, limits: KeyLimits, clock_offset_s: float) -> bytes:
        found = self._limits.get((limits, clock_offset_s))
        if found is None:
            if len(self._limits) >= _CACHED_MAX:
                self._limits.clear()
            found = self._limits[(limits, clock_offset_s)] = b"".join((
                self._timing_args(clock_offset_s), _optional(limits.requests_per_minute),
                _optional(limits.tokens_per_minute), _optional(limits.max_concurrent), _optional(limits.token_budget),
                bulk(limits.budget_period), bulk(CONCURRENCY_RETRY_S), bulk(BUDGET_KEY_GRACE_S)))
        return found
