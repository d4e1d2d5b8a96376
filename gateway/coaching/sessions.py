"""Conversation sessions of `/api/coaching/chat`: the history the gateway keeps, behind one Protocol with
two stores (in memory, one process; Redis, shared by every replica).

A session is named by its *key*, `<caller subject>:<session id>` (`key:key_0123…:morning`): the
caller's subject is part of it, so a key can only ever reach its own sessions. It holds the turns
(the user's messages and the assistant's answers, never the system prompt), trimmed to a token budget
(about four characters a token plus four a message) keeping the latest, and expires `ttl` seconds
after its last turn (each turn refreshes it).

Redis layout (`prefix` defaults to `llmgw:`):

    llmgw:session:<subject>:<session id>   string  the Session, msgspec JSON, with a TTL (PX)

`append` is atomic (WATCH / MULTI, retried with jitter on contention): turns of one session answered at
the same time by two replicas are both kept.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
from redis.exceptions import WatchError

from gateway.errors import StoreUnavailable
from gateway.shared_state.redis_client import DEFAULT_KEY_PREFIX, RedisClient, translate_redis_errors
from gateway.shared_state.redis_json_store import RedisJsonStore

Message = dict[str, Any]
APPEND_ATTEMPTS = 16


class Session(msgspec.Struct, kw_only=True):
    context_type: str
    """The context type of the last turn."""
    messages: list[Message]
    created_at: float
    updated_at: float
    expires_at: float


def session_key(subject: str, session_id: str) -> str:
    """The store key of a caller's session (session ids never contain `:`, so keys cannot collide)."""
    return f"{subject}:{session_id}"


def text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only their text counts
        parts = [p if isinstance(p, str) else p.get("text") if isinstance(p, dict) else None for p in content]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def message_tokens(message: Message) -> int:
    """About four characters a token, plus four for the chat template (as the gateway estimates prompts)."""
    return len(text_of(message.get("content"))) // 4 + 4


def tokens_of(messages: Sequence[Message]) -> int:
    return sum(message_tokens(m) for m in messages)


def trim_history(messages: Sequence[Message], budget_tokens: int) -> list[Message]:
    """The latest messages that fit in `budget_tokens`, starting at a user message (a turn is never cut
    in two from its question)."""
    kept: list[Message] = []
    used = 0
    for message in reversed(messages):
        cost = message_tokens(message)
        if used + cost > budget_tokens:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    while kept and kept[0].get("role") != "user":
        kept.pop(0)
    return kept


def appended(previous: Session | None, messages: Sequence[Message], *, context_type: str, budget_tokens: int,
             ttl_s: float, now: float) -> Session:
    history = [] if previous is None else previous.messages
    return Session(context_type=context_type, messages=trim_history([*history, *messages], budget_tokens),
                   created_at=now if previous is None else previous.created_at, updated_at=now,
                   expires_at=now + ttl_s)


class SessionStore(Protocol):
    async def get(self, key: str) -> Session | None:
        """The live session, or None (never was, deleted, or expired)."""
        ...

    async def append(self, key: str, messages: Sequence[Message], *, context_type: str, budget_tokens: int,
                     ttl_s: float) -> Session:
        """Add one turn, trim to `budget_tokens`, and make the session live `ttl_s` more seconds."""
        ...

    async def delete(self, key: str) -> bool:
        """Forget the session; True if it existed."""
        ...

    async def close(self) -> None: ...


class MemorySessionStore:
    """Sessions in this process: the embedded default. At most `max_sessions` (the least recently used
    go first); `clock`: unix time, for expiry."""

    def __init__(self, *, max_sessions: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._max_sessions = max_sessions
        self._clock = clock

    async def get(self, key: str) -> Session | None:
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[key]
            return None
        return msgspec.structs.replace(session, messages=list(session.messages))

    async def append(self, key: str, messages: Sequence[Message], *, context_type: str, budget_tokens: int,
                     ttl_s: float) -> Session:
        session = appended(await self.get(key), messages, context_type=context_type, budget_tokens=budget_tokens,
                           ttl_s=ttl_s, now=self._clock())
        self._sessions[key] = session
        self._sessions.move_to_end(key)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        return session

    async def delete(self, key: str) -> bool:
        live = await self.get(key) is not None
        self._sessions.pop(key, None)
        return live

    async def close(self) -> None:
        pass


class RedisSessionStore(RedisJsonStore[Session]):
    """A `SessionStore` on `redis` (built by `gateway.shared_state.redis_client.connect_redis`); the keyword
    arguments are `RedisJsonStore`'s."""

    def __init__(self, redis: RedisClient, prefix: str = DEFAULT_KEY_PREFIX, **options: Any) -> None:
        super().__init__(redis, Session, prefix, **options)

    def _name(self, key: str) -> str:
        return f"{self._prefix}session:{key}"

    async def get(self, key: str) -> Session | None:
        return await self._read(self._name(key), "get session")

    async def append(self, key: str, messages: Sequence[Message], *, context_type: str, budget_tokens: int,
                     ttl_s: float) -> Session:
        name = self._name(key)
        ttl_ms = max(1, int(ttl_s * 1000))
        with translate_redis_errors("append to session"):
            for _ in range(APPEND_ATTEMPTS):
                async with self._redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(name)
                        raw = await pipe.get(name)
                        previous = None if raw is None else self._decoder.decode(raw)
                        session = appended(previous, messages, context_type=context_type,
                                           budget_tokens=budget_tokens, ttl_s=ttl_s, now=self._clock())
                        pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                        pipe.set(name, msgspec.json.encode(session), px=ttl_ms)
                        await pipe.execute()
                        return session
                    except WatchError:  # another turn got in first: read again, after a short pause
                        await asyncio.sleep(random.uniform(0.001, 0.01))  # noqa: S311 (jitter, not a secret)
        raise StoreUnavailable("redis append to session failed: too many concurrent turns on one session")

    async def delete(self, key: str) -> bool:
        return await self._remove(self._name(key), "delete session")
