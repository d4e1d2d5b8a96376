"""`POST /v1/feedback`: a rating (and optionally a label and a comment) on a captured interaction.

`{"request_id": "req_…", "rating": 4, "label": "helpful", "comment": "…"}` answers 201 with the
feedback; 404 `interaction_not_found` unless that request was captured for the caller's tenant (the
key's team, else the key itself), so nobody can rate, or learn about, another tenant's requests.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from gateway.auth.authenticator import Authenticator
from gateway.capture.interactions import InteractionCapture
from gateway.errors import InvalidRequest, NotFound
from gateway.http.callers import caller_of
from gateway.http.openapi_bodies import json_body, struct_schema, with_body
from gateway.http.request_observer import record_of

MAX_LABEL_CHARS = 64
MAX_COMMENT_CHARS = 4000


class Feedback(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    rating: Annotated[int, msgspec.Meta(ge=-100, le=100)]
    """Higher is better: 1 to 5 stars, or 1 / -1 for thumbs up / down."""
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LABEL_CHARS)] | None = None
    comment: Annotated[str, msgspec.Meta(max_length=MAX_COMMENT_CHARS)] | None = None


_FEEDBACK_BODY = json_body(struct_schema(Feedback), {"request_id": "req_0123456789abcdef01234567", "rating": 5,
                                                      "label": "helpful"})


def decode_feedback(raw: bytes) -> Feedback:
    try:
        return msgspec.json.decode(raw or b"{}", type=Feedback)
    except msgspec.ValidationError as exc:
        message = str(exc)
        reason, sep, where = message.rpartition(" - at `$.")
        if sep:
            raise InvalidRequest(reason, param=where.rstrip("`")) from None
        named = message.split("`")  # "Object missing required field `rating`"
        raise InvalidRequest(message, param=named[1] if len(named) == 3 else None) from None
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for invalid UTF-8
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json") from None


def feedback_routes(capture: InteractionCapture, authenticator: Authenticator) -> list[HTTPRouteHandler]:
    @post("/v1/feedback", status_code=201, summary="Rate a captured interaction (for fine-tuning datasets)",
          operation_class=with_body(_FEEDBACK_BODY))
    async def feedback(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        record_of(request.scope).endpoint = "feedback"
        caller = await caller_of(request, authenticator)
        spec = decode_feedback(await request.body())
        written = await capture.add_feedback(caller, spec.request_id, rating=spec.rating, label=spec.label,
                                             comment=spec.comment)
        if written is None:
            raise NotFound(f"No captured interaction `{spec.request_id}` for this API key.", param="request_id",
                           code="interaction_not_found")
        return Response({"object": "feedback", "request_id": spec.request_id, "rating": spec.rating,
                         "label": spec.label, "created": written["timestamp"]}, status_code=201)

    return [feedback]
