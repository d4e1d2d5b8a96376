"""Counting a request's prompt tokens for the token counting endpoints (`/v1/messages/count_tokens`,
`/v1/responses/input_tokens`): exactly, by a worker of the chosen model whose protocol can count (vLLM,
llama.cpp's server: the model's own tokenizer and chat template, tools included), else the surface's
estimate (about four characters a token).

The worker is chosen as the forwarder would choose it (the model's policy, ejected and unhealthy workers
left out), among those that can count. A count is a cheap call, so it is tried once: a worker that
fails, or a model none of whose workers can count, gets the estimate, never an error. The call is no
inference: it takes no worker slot and counts as no success or failure of the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from gateway.errors import GatewayError
from gateway.inference.forwarder import request_key
from gateway.observability.request_record import RequestRecord
from gateway.protocols.base import WorkerProtocol
from gateway.protocols.registry import protocols_by_kind
from gateway.surfaces.request import InferenceRequest
from gateway.upstream.client import WorkerClient
from gateway.workers.active_catalog import ActiveCatalog
from gateway.workers.pool import Placement

_log = structlog.get_logger("gateway.inference.token_counting")

COUNT_WAIT_S = 10.0
"""The longest a worker's answer to one counting call is awaited (within its own first-byte timeout):
tokenizing takes milliseconds, so a slower worker is busy or broken and the estimate answers sooner."""


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    exact: bool
    """Counted by a worker; False: the gateway's estimate."""

    @property
    def headers(self) -> dict[str, str]:
        """The answer's header saying whether a worker counted: `x-gateway-token-count: exact|estimate`."""
        return {"x-gateway-token-count": "exact" if self.exact else "estimate"}


class TokenCounter:
    """Counts prompt tokens on workers through the data plane's client."""

    def __init__(self, client: WorkerClient, protocols: Mapping[str, WorkerProtocol] | None = None) -> None:
        self._client = client
        self._protocols = protocols if protocols is not None else protocols_by_kind()

    async def count(self, runtime: ActiveCatalog, request: InferenceRequest, model: str,
                    record: RequestRecord) -> TokenCount:
        """The prompt tokens of `request` (translated into chat completions) for the catalog `model`."""
        placement = self._counting_worker(runtime, request, model)
        if placement is not None:
            try:
                tokens = await self._ask(runtime, placement, model, request, record.request_id)
            except GatewayError as exc:
                _log.info("token_count_failed", worker=placement.name, error=exc.message)
            else:
                record.worker = placement.name
                return TokenCount(tokens, exact=True)
        return TokenCount(request.surface.prompt_tokens_estimate(request.body), exact=False)

    def _counting_worker(self, runtime: ActiveCatalog, request: InferenceRequest, model: str) -> Placement | None:
        """A worker of `model` that can count, by the model's policy; None when no healthy one can."""
        pool = runtime.pool
        unable = {p.name for p in pool.placements(model)
                  if not self._protocols[p.state.spec.kind].capabilities.counts_tokens}
        now = asyncio.get_running_loop().time()
        return pool.pick(model, request_key(request, model), now, exclude=unable | pool.health.down())

    async def _ask(self, runtime: ActiveCatalog, placement: Placement, model: str, request: InferenceRequest,
                   request_id: str) -> int:
        """The count the worker gives, after each call its protocol asks for."""
        protocol = self._protocols[placement.state.spec.kind]
        wait = min(COUNT_WAIT_S, runtime.timeouts_for(model, placement.state.spec.timeouts).first_byte)
        calls = protocol.token_count(request.body, placement)
        path, body = next(calls)
        while True:
            response = await self._client.send(placement.target, path, body, request_id, wait=wait,
                                               rejection=protocol.rejection)
            answer = await self._client.read_body(response, placement.name, wait)
            try:
                path, body = calls.send(answer)
            except StopIteration as done:
                tokens: int = done.value
                return tokens
