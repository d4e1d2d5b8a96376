"""One try of a request whose body is a client's upload still arriving (`InferenceRequest.upload`: audio):
the body goes to the worker as the client sends it, and the worker's answer comes back as it is, with its
content type (JSON, text, SRT, VTT; SSE relayed byte for byte).

The chain around it is the forwarder's, as for every request (worker choice, fallbacks, slots, the retry
budget), with one difference: a streamed body cannot be sent twice. A failed try may go to another
worker only while the gateway still holds all it sent (nothing beyond the head was read from the
client, `StreamedUpload.replayable`); after that its failure is final (`SpentUpload`). When the client
is at fault (the body grew too large, the client left), that is the error, not the worker's.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayError
from gateway.inference.attempt import Attempt, AttemptRunner, Reply, abandoning, traced_attempt
from gateway.inference.lifecycle import Lifecycle
from gateway.surfaces.upload import StreamedUpload
from gateway.upstream.client import WorkerClient, WorkerResponse
from gateway.upstream.raw_relay import relay_raw
from gateway.upstream.sse_relay import StreamOutcome
from gateway.upstream.token_usage import Usage

if TYPE_CHECKING:
    from gateway.observability.tracing import AttemptTrace

_NO_TOKENS = Usage(0, 0, 0)


class SpentUpload(GatewayError):
    """A worker failed after the client's body had been read past what the gateway holds: the worker's
    error as it is, but final (no other worker can get the body)."""

    def __init__(self, cause: GatewayError) -> None:
        super().__init__(cause.message, param=cause.param, code=cause.error_code)
        self.cause = cause
        self.headers = cause.headers

    def status_code(self) -> int:
        return self.cause.status_code()

    def body(self) -> dict[str, Any]:
        return self.cause.body()


class UploadAttempts:
    def __init__(self, client: WorkerClient, attempts: AttemptRunner, lifecycle: Lifecycle) -> None:
        """`attempts`: the runner of the other tries, whose slot release this one shares."""
        self._client = client
        self._attempts = attempts
        self._lifecycle = lifecycle

    async def run(self, attempt: Attempt) -> Reply:
        """The worker's answer: read whole, or a relay of its event stream (which releases the slot when
        it ends). Raises a failure before the answer's first byte: retryable only while the upload is."""
        call, placement, protocol = attempt.call, attempt.placement, attempt.protocol
        request, record = call.request, call.record
        upload = request.upload
        assert upload is not None
        path, _ = protocol.request(request, placement)  # the protocol names the path (and sets body["model"])
        model = placement.upstream_model
        state = placement.state
        traced = None if record.trace is None else traced_attempt(record.trace, attempt)
        if not attempt.slot_held:
            state.in_flight += 1
        handed_to_stream = False
        began = time.perf_counter()
        try:
            response = await self._client.send_upload(
                placement.target, path, upload.body_with(model), record.request_id,
                content_type=upload.content_type, length=upload.length_with(model),
                wait=attempt.deadline - asyncio.get_running_loop().time(), first_byte=attempt.first_byte,
                rejection=protocol.rejection, headers=None if traced is None else traced.worker_headers(None))
            content_type = response.content_type
            headers = {"content-type": response.headers.get("Content-Type", content_type)}
            if content_type == "text/event-stream":
                handed_to_stream = True
                return self._streamed(attempt, response, headers, traced)
            body = await self._client.read_body(response, placement.name, attempt.first_byte)
            if traced is not None:
                traced.answered(body)
            return Reply(headers=headers, body=body)
        except GatewayError as exc:
            final = _final(upload, exc)
            if traced is not None:
                traced.failed(final)
            raise final from None
        except BaseException as exc:
            if traced is not None:
                traced.failed(exc)
            raise
        finally:
            record.upstream_s += time.perf_counter() - began
            if not handed_to_stream:
                self._attempts.release(state)

    def _streamed(self, attempt: Attempt, response: WorkerResponse, headers: dict[str, str],
                  traced: AttemptTrace | None) -> Reply:
        call, placement = attempt.call, attempt.placement
        state, record = placement.state, call.record
        first_choice = attempt.model == call.choice.model
        cutoff = self._lifecycle.stream_started()
        streamed = None if traced is None else traced.stream()
        ended = False

        def finished(outcome: StreamOutcome) -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            self._attempts.release(state)
            self._lifecycle.stream_ended(cutoff)
            record.first_token = outcome.first_content_at
            record.client_disconnected = outcome.client_disconnected
            if outcome.error is not None:
                record.error = outcome.error.error_code
            if streamed is not None:
                streamed.ended(completed=outcome.completed, error=outcome.error, chunks=outcome.chunks,
                               client_disconnected=outcome.client_disconnected, last=outcome.last)
            call.on_stream_end(outcome, _NO_TOKENS, first_choice)

        stream = relay_raw(response, worker_name=placement.name, idle_timeout=attempt.idle, deadline=attempt.deadline,
                           on_end=finished, cutoff=cutoff)
        return Reply(headers=headers, stream=stream, abandon=abandoning(response, finished))


def _final(upload: StreamedUpload, error: GatewayError) -> GatewayError:
    """The error a failed try ends with: the client's own when its body failed, else the worker's, made
    final once the body cannot be sent again."""
    if upload.error is not None:
        return upload.error
    return error if upload.replayable else SpentUpload(error)
