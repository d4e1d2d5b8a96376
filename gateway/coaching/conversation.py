"""One turn of `/api/coaching/chat`: decode the request, choose the model from the context type, put the
conversation together (system prompt, kept history, new messages), and record the answer in the session.
The turn runs inside the one inference handler (`Coach.turn` is its `Turn`), so a coaching request is
authorized, admitted, cached, forwarded, recorded and captured exactly as `/v1/chat/completions` is.

The body is an OpenAI chat request plus `context_type` (required) and `session_id` (optional); every
other field reaches the worker as with `/v1/chat/completions`. The context type's `max_tokens` and
`temperature` apply unless the request sets them. The model: the request's `model` if it names one,
else the context type's `model`, else the catalog's routing rules matched against the context type's
name, else the default model.

With a `session_id`, the client sends only its new messages: the gateway prepends the kept history
(trimmed to the context's `history_tokens`, latest turns first) and, once the answer is complete,
appends the new messages and the answer. A stream is passed through byte for byte while its answer
is gathered (`gateway.upstream.stream_folding`); the turn is kept only when the stream ended with
`[DONE]` and no error event. Failing to keep it fails the turn (503 `store_unavailable`, or that error
as the stream's last event).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.auth.authenticator import Caller
from gateway.coaching.catalog import CoachingCatalog, CoachingContext
from gateway.coaching.config import MobileConfigHolder
from gateway.coaching.sessions import Message, Session, SessionStore, session_key, tokens_of, trim_history
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound, NotFound
from gateway.inference.forwarder import Reply
from gateway.observability.request_record import RequestRecord
from gateway.surfaces import CHAT_COMPLETIONS, InferenceRequest
from gateway.upstream.sse_relay import error_event
from gateway.upstream.stream_folding import StreamGatherer
from gateway.workers.active_catalog import CatalogHolder
from routing.model_choice import ModelChooser, UnknownModel

SESSION_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_decode = msgspec.json.Decoder().decode


@dataclass(slots=True)
class CoachingTurn:
    inference: InferenceRequest
    context: CoachingContext
    session_id: str | None
    new_messages: list[Message]


def checked_session_id(value: object) -> str:
    if not isinstance(value, str) or not SESSION_ID.match(value):
        raise InvalidRequest("`session_id` must be 1-128 characters of A-Z a-z 0-9 . _ -.", param="session_id",
                             code="invalid_value")
    return value


def decode_coaching_request(raw: bytes, coaching: CoachingCatalog) -> CoachingTurn:
    inference = CHAT_COMPLETIONS.decode(raw)
    body = inference.body
    context = _context_of(body.pop("context_type", None), coaching)
    session = body.pop("session_id", None)
    session_id = None if session is None else checked_session_id(session)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                   or max_tokens < 1):
        raise InvalidRequest("`max_tokens` must be a positive integer.", param="max_tokens", code="invalid_value")
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or isinstance(temperature, bool)
                                    or not 0 <= temperature <= 2):
        raise InvalidRequest("`temperature` must be a number from 0 to 2.", param="temperature",
                             code="invalid_value")
    if session_id is not None and body.get("n") not in (None, 1):
        raise InvalidRequest("A session keeps one answer a turn: `n` must be 1.", param="n", code="invalid_value")
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = context.max_tokens
    if temperature is None:
        body["temperature"] = context.temperature
    return CoachingTurn(inference, context, session_id, list(body["messages"]))


def _context_of(value: object, coaching: CoachingCatalog) -> CoachingContext:
    valid = ", ".join(coaching.names) or "none are configured"
    if value is None:
        raise InvalidRequest(f"Missing required parameter: 'context_type'. Valid context types: {valid}.",
                             param="context_type", code="missing_required_parameter")
    context = coaching.context(value) if isinstance(value, str) else None
    if context is None:
        raise InvalidRequest(f"Unknown context_type {value!r}. Valid context types: {valid}.",
                             param="context_type", code="invalid_value")
    return context


def route_turn(turn: CoachingTurn, chooser: ModelChooser) -> tuple[str, str | None] | None:
    """Set the model the context type calls for (unless the request names one): the route label, and the
    routing rule that chose the model (None: the context type names it)."""
    if turn.inference.requested_model:
        return None
    context = turn.context
    if context.model is not None:
        turn.inference.body["model"] = context.model
        return f"coaching:{context.name}", None
    try:
        choice = chooser.by_rules(context.name)
    except UnknownModel:
        raise ModelNotFound("No routing rule matches this context type and the catalog has no default "
                            "model.", param="model") from None
    turn.inference.body["model"] = choice.model
    return f"coaching:{context.name}:{choice.route}", choice.route


def conversation(turn: CoachingTurn, history: list[Message]) -> list[Message]:
    """System prompt, then as much of the history as the budget leaves after the new messages, then those."""
    system: Message = {"role": "system", "content": turn.context.system_prompt}
    budget = max(0, turn.context.history_tokens - tokens_of(turn.new_messages))
    return [system, *trim_history(history, budget), *turn.new_messages]


def answer_of(body: bytes) -> Message | None:
    """The assistant's message of a chat completion (its text), or None when it has none."""
    try:
        data = _decode(body)
        content = data["choices"][0]["message"]["content"]
    except (msgspec.DecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        return None
    return {"role": "assistant", "content": content} if isinstance(content, str) else None


async def recording(stream: AsyncIterator[bytes], save: Callable[[Message], Awaitable[None]]
                    ) -> AsyncIterator[bytes]:
    """Pass `stream` through as it comes, gathering the answer; before the piece that carries `[DONE]`
    (the relay yields whole events, `[DONE]` on its own), if no error event came, `save` the first
    choice's content (its failure becomes an error event)."""
    gathered = StreamGatherer("chat/completions")
    try:
        async for piece in stream:
            if not gathered.completed:
                gathered.feed(piece)
                if gathered.completed and gathered.error is None:
                    try:
                        await save({"role": "assistant", "content": _first_content(gathered.answer())})
                    except GatewayError as exc:
                        yield error_event(exc)
            yield piece
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()  # the relay releases the worker and settles the tokens now, not at GC


def _first_content(answer: dict[str, Any]) -> str:
    for choice in answer["choices"]:
        if choice["index"] == 0:
            content = choice["message"]["content"]
            return content if isinstance(content, str) else ""
    return ""


class Coach:
    """Coaching turns and their kept sessions."""

    def __init__(self, runtimes: CatalogHolder, config: MobileConfigHolder, sessions: SessionStore) -> None:
        self._runtimes = runtimes
        self._config = config
        self._sessions = sessions

    def turn(self) -> CoachedTurn:
        """A turn for one request, to pass to `InferenceHandler.answer`."""
        return CoachedTurn(self._runtimes, self._config, self._sessions)

    async def history(self, caller: Caller, session_id: str) -> Session:
        session = await self._sessions.get(session_key(caller.subject, checked_session_id(session_id)))
        if session is None:
            raise _no_session(session_id)
        return session

    async def forget(self, caller: Caller, session_id: str) -> None:
        if not await self._sessions.delete(session_key(caller.subject, checked_session_id(session_id))):
            raise _no_session(session_id)


class CoachedTurn:
    """One coaching request, as the inference handler runs it (`gateway.inference.handler.Turn`)."""

    label = "coaching/chat"

    def __init__(self, runtimes: CatalogHolder, config: MobileConfigHolder, sessions: SessionStore) -> None:
        self._runtimes = runtimes
        self._coaching = config.current.coaching
        self._sessions = sessions
        self._route: tuple[str, str | None] | None = None
        self._key: str | None = None
        self._turn: CoachingTurn | None = None
        self.capture_route: str | None = None

    async def begin(self, body: bytes, caller: Caller) -> InferenceRequest:
        """The conversation to send: the context's system prompt, the kept history, the new messages."""
        turn = self._turn = decode_coaching_request(body, self._coaching)
        self._route = route_turn(turn, self._runtimes.current.chooser)
        key = self._key = None if turn.session_id is None else session_key(caller.subject, turn.session_id)
        history: list[Message] = []
        if key is not None:
            session = await self._sessions.get(key)
            history = [] if session is None else session.messages
        turn.inference.body["messages"] = conversation(turn, history)
        turn.inference.session = key
        return turn.inference

    async def end(self, reply: Reply, record: RequestRecord) -> None:
        """The turn's headers and route label; the answer kept in the session (a stream's once complete)."""
        turn, key = self._turn, self._key
        assert turn is not None
        if self._route is None:
            self.capture_route = record.route
        else:
            record.route = reply.headers["x-gateway-route"] = self._route[0]
            self.capture_route = self._route[1]
        reply.headers["x-gateway-context-type"] = turn.context.name
        if key is None or turn.session_id is None:
            return
        reply.headers["x-gateway-session"] = turn.session_id
        coaching = self._coaching

        async def save(answer: Message) -> None:
            await self._sessions.append(key, [*turn.new_messages, answer], context_type=turn.context.name,
                                        budget_tokens=turn.context.history_tokens, ttl_s=coaching.session_ttl)

        if reply.stream is not None:
            reply.stream = recording(reply.stream, save)
            return
        answer = answer_of(reply.body)
        if answer is not None:
            await save(answer)


def _no_session(session_id: str) -> NotFound:
    return NotFound(f"No coaching session `{session_id}` (it may have expired).", param="session_id",
                    code="session_not_found")


def describe_session(session_id: str, session: Session) -> dict[str, Any]:
    return {"id": session_id, "object": "coaching.session", "context_type": session.context_type,
            "messages": session.messages, "tokens": tokens_of(session.messages),
            "created_at": int(session.created_at), "updated_at": int(session.updated_at),
            "expires_at": int(session.expires_at)}
