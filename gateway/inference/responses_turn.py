"""One request of the OpenAI Responses API as a `Turn` of the inference handler, and the stored responses
it reads and keeps (`GET` / `DELETE /v1/responses/{id}`, `POST /v1/responses/input_tokens`).

`begin` decodes the request (`gateway.surfaces.responses`) once the caller is known, and expands a
`previous_response_id`: the stored response's conversation (its whole input, then its answer) goes
before the new input, after the new `instructions` (a continuation keeps only its own, as OpenAI does),
so the worker gets the whole conversation and stays stateless, whichever replica answers. `end` names
the catalog model in the Response and, unless `store` is false, keeps the response: a whole answer at
once, a stream once it has completed (the stream encoder calls `keep` before `response.completed`),
never a failed one. Responses are stored under the caller's tenant (the key's team, else the key):
another tenant's id is not found.
"""

from __future__ import annotations

import re
import time
from typing import Any

from gateway.auth.authenticator import Caller
from gateway.errors import NotFound
from gateway.inference.forwarder import Reply
from gateway.observability.request_record import RequestRecord
from gateway.responses_store import ResponseStore, StoredResponse
from gateway.surfaces.responses import RESPONSES, ResponsesRequest
from gateway.surfaces.responses_answer import answer_message
from gateway.surfaces.responses_request import with_one_system_message

RESPONSE_ID = re.compile(r"^resp_[A-Za-z0-9]{1,64}$")
"""The ids the gateway makes; any other is never found (nor reaches a store key)."""


class StoredResponses:
    """Responses turns, and the responses they keep (`ttl_s` seconds each)."""

    def __init__(self, store: ResponseStore, ttl_s: float) -> None:
        self._store = store
        self._ttl_s = ttl_s

    def turn(self) -> ResponsesTurn:
        """A turn for one request, to pass to `InferenceHandler.answer`."""
        return ResponsesTurn(self)

    async def request(self, raw: bytes, caller: Caller) -> ResponsesRequest:
        """The request in `raw`, its `previous_response_id` expanded."""
        request = RESPONSES.decode(raw)
        previous_id = request.head["previous_response_id"]
        if previous_id is not None:
            previous = await self._load(caller, previous_id, param="previous_response_id")
            messages = request.body["messages"]
            start = len(messages) - len(request.conversation)  # after the new instructions, if any
            messages[start:start] = previous.messages
            request.conversation[:0] = previous.messages
            request.previous = previous.messages
        request.body["messages"] = with_one_system_message(request.body["messages"])
        return request

    async def get(self, caller: Caller, response_id: str) -> dict[str, Any]:
        return (await self._load(caller, response_id, param="response_id")).response

    async def delete(self, caller: Caller, response_id: str) -> None:
        await self._load(caller, response_id, param="response_id")
        await self._store.delete(caller.tenant, response_id)

    async def keep(self, caller: Caller, request: ResponsesRequest, response: dict[str, Any]) -> None:
        messages = [*request.conversation, answer_message(response["output"])]
        stored = StoredResponse(response=response, messages=messages, expires_at=time.time() + self._ttl_s)
        await self._store.put(caller.tenant, response["id"], stored)

    async def _load(self, caller: Caller, response_id: str, *, param: str) -> StoredResponse:
        stored = None
        if RESPONSE_ID.match(response_id):
            stored = await self._store.get(caller.tenant, response_id)
        if stored is None or not caller.may_use(stored.response["model"]):
            code = "previous_response_not_found" if param == "previous_response_id" else "response_not_found"
            raise NotFound(f"Response with id '{response_id}' not found.", param=param, code=code)
        return stored


class ResponsesTurn:
    """One Responses request, as the inference handler runs it (`gateway.inference.handler.Turn`)."""

    label = "responses"

    def __init__(self, responses: StoredResponses) -> None:
        self._responses = responses
        self._request: ResponsesRequest | None = None
        self._caller: Caller | None = None
        self.capture_route: str | None = None

    async def begin(self, body: bytes, caller: Caller) -> ResponsesRequest:
        self._caller = caller
        self._request = await self._responses.request(body, caller)
        return self._request

    async def end(self, reply: Reply, record: RequestRecord) -> None:
        """The catalog model in the Response; the response kept unless `store` is false (a stream's by
        its encoder, once complete)."""
        request, caller = self._request, self._caller
        assert request is not None and caller is not None
        self.capture_route = record.route
        if record.model:
            request.head["model"] = record.model
        if not request.stored:
            return
        responses = self._responses

        async def keep(response: dict[str, Any]) -> None:
            await responses.keep(caller, request, response)

        if reply.stream is not None:
            request.keep = keep
        elif reply.native:
            await keep(RESPONSES.native_response(reply.body, request))
        else:
            await keep(RESPONSES.encoded_response(reply.body, request))
