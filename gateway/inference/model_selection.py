"""Stage 2 of the pipeline: which catalog model answers a request, and may the caller use it.

The choice itself is pure (`routing.model_choice`: explicit name or alias, else the first matching rule,
else the default); this stage turns an unknown model into OpenAI's 404, refuses a model the caller's key
does not allow (403 `model_not_allowed`), drops the fallbacks it does not allow, and writes the choice
into the request's record (for the log line, the metrics and the capture's opt-in).
"""

from __future__ import annotations

import dataclasses

from gateway.auth.authenticator import Caller
from gateway.errors import ModelNotFound, PermissionDenied
from gateway.observability.request_record import RequestRecord
from gateway.surfaces.request import InferenceRequest
from gateway.workers.active_catalog import ActiveCatalog
from routing.model_choice import ModelChoice, UnknownModel


def choose_model(runtime: ActiveCatalog, request: InferenceRequest) -> ModelChoice:
    """The catalog's choice for `request` (no permission check: `/v1/routing/explain` and the CLI use it
    to show a decision)."""
    try:
        text = request.surface.routing_text(request.body, runtime.chooser.match_on)
        return runtime.chooser.choose(request.requested_model, text)
    except UnknownModel as exc:
        if exc.requested is None:
            raise ModelNotFound("No `model` was given and the catalog has no default model.",
                                param="model") from None
        raise ModelNotFound(f"The model `{exc.requested}` does not exist or you do not have access "
                            "to it.", param="model") from None


class ModelSelection:
    """Chooses the model of each request, within what the caller may use. Holds nothing: the catalog comes
    with each call (`runtime`, the one current when the request began)."""

    def choose(self, runtime: ActiveCatalog, request: InferenceRequest, caller: Caller, record: RequestRecord
               ) -> ModelChoice:
        """The model (and the fallbacks) to ask, recorded in `record`; raises `ModelNotFound` or
        `PermissionDenied`."""
        choice = choose_model(runtime, request)
        record.model, record.route, record.stream = choice.model, choice.route, request.stream
        if not caller.may_use(choice.model):
            raise PermissionDenied(f"This API key may not use the model `{choice.model}`.", param="model",
                                   code="model_not_allowed")
        allowed = tuple(m for m in choice.fallbacks if caller.may_use(m))
        if allowed != choice.fallbacks:
            choice = dataclasses.replace(choice, fallbacks=allowed)
        return choice
