"""The simulated vLLM's audio endpoints, `POST /v1/audio/transcriptions` and `POST /v1/audio/translations`
(vLLM serves Whisper models there): the multipart body is read as it streams in, and the answer is a
deterministic text saying how many bytes of audio came (`transcribed 123456 bytes`), so a test can check
that the whole file arrived.

`response_format`: `json` (`{"text"}`, the default), `text`, `verbose_json` (with a segment), `srt`,
`vtt`. `stream=true`: SSE events as OpenAI streams transcriptions, `transcript.text.delta` per word then
`transcript.text.done` with the whole text. The record notes the form's text fields (`body`), the audio's
size (`upload_bytes`) and when the body's first and last bytes came (`body_first_at`, `body_end_at`).
A model named after an error fault answers that error, once the whole body was read.
"""

from __future__ import annotations

import re
import time

from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.multipart_form import StreamedForm
from simulator.streaming import ChunkStream, ErrorReply, json_response, record_of, sse_event
from simulator.vllm_requests import resolve_model, vllm_error
from simulator.vllm_shapes import error_body

_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


class VllmAudio:
    """The handlers; registered by `VllmEndpoints.add_routes`."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/transcriptions", self.transcribe)
        app.router.add_post("/v1/audio/translations", self.transcribe)

    async def transcribe(self, request: web.Request) -> web.StreamResponse:
        boundary = _BOUNDARY.search(request.headers.get("Content-Type", ""))
        if request.content_type != "multipart/form-data" or boundary is None:
            raise vllm_error(400, "Unsupported Media Type: expected multipart/form-data")
        fields, audio_bytes = await _read_form(request, boundary.group(1).encode())
        record = record_of(request)
        record.body, record.upload_bytes = dict(fields), audio_bytes
        if "file" not in fields and audio_bytes == 0:
            raise vllm_error(400, "file: Field required", param="file")
        _model, fault = resolve_model(request, fields, self.config)
        if fault is not None and fault.error_status is not None:
            status = fault.error_status
            raise ErrorReply(status, error_body(f"Simulated error (fault {fault.name}).", status))
        response_format = fields.get("response_format", "json")
        if response_format not in _FORMATS:
            raise vllm_error(400, f"response_format: Input should be one of {', '.join(_FORMATS)}",
                             param="response_format")
        text = f"transcribed {audio_bytes} bytes"
        if fields.get("stream", "false").lower() == "true":
            return await _stream(request, text)
        return _whole(text, response_format, fields.get("language") or "en")


async def _read_form(request: web.Request, boundary: bytes) -> tuple[dict[str, str], int]:
    """The form's text fields, and the files' size, read as the body arrives."""
    record = record_of(request)
    form = StreamedForm(boundary)
    async for data in request.content.iter_any():
        if record.body_first_at is None:
            record.body_first_at = time.monotonic()
        form.feed(data)
    record.body_end_at = time.monotonic()
    if not form.ended:
        raise vllm_error(400, "The multipart body ended before its closing boundary")
    return form.fields, form.file_bytes


def _whole(text: str, response_format: str, language: str) -> web.Response:
    if response_format == "text":
        return web.Response(text=text + "\n", content_type="text/plain")
    if response_format == "srt":
        return web.Response(text=f"1\n00:00:00,000 --> 00:00:01,000\n{text}\n\n", content_type="text/plain")
    if response_format == "vtt":
        return web.Response(text=f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n\n", content_type="text/plain")
    if response_format == "verbose_json":
        segment = {"id": 0, "seek": 0, "start": 0.0, "end": 1.0, "text": text, "tokens": [], "temperature": 0.0,
                   "avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0}
        return json_response({"task": "transcribe", "language": language, "duration": 1.0, "text": text,
                              "segments": [segment]})
    return json_response({"text": text})


async def _stream(request: web.Request, text: str) -> web.StreamResponse:
    stream = await ChunkStream.open(request, "text/event-stream", {})
    words = text.split(" ")
    for index, word in enumerate(words):
        delta = word if index == 0 else " " + word
        await stream.send(sse_event({"type": "transcript.text.delta", "delta": delta}))
    await stream.send(sse_event({"type": "transcript.text.done", "text": text}))
    return await stream.finish()
