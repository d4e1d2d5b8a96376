"""OpenAI's audio surfaces, `POST /v1/audio/transcriptions` and `POST /v1/audio/translations`: a
`multipart/form-data` body (`file`, `model`, and optional `language`, `prompt`, `response_format`,
`temperature`, `timestamp_granularities[]`, `stream`), passed on to a worker that serves the surface
(vLLM serves Whisper models at both paths) while the client is still sending it.

The gateway reads the body only until the `model` field is whole (`read_head`): the openai SDK sends
the text fields before the file, so that is the first few hundred bytes. A body whose `file` comes first
is read (and held) up to `lookahead` bytes while looking for `model`, and refused past that (400 on
`model`: send `model` first). The text fields read by then are checked; the others, and the audio, are
the worker's to judge. The answer comes back as the worker wrote it (JSON, text, SRT, VTT, or SSE with
`stream=true`). No text to route on: routing rules that need text never fire. Never cached or captured.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.errors import InvalidRequest
from gateway.surfaces.base import Body, RequestDoc
from gateway.surfaces.multipart_head import MultipartHead
from gateway.surfaces.passthrough import PassThroughSurface
from gateway.surfaces.request import InferenceRequest
from gateway.surfaces.upload import BodySource, StreamedUpload

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_BOOLEANS = ("true", "false", "1", "0")


async def read_head(source: BodySource, boundary: bytes, lookahead: int) -> MultipartHead:
    """The body's head, read from `source` until the `model` field is whole. `InvalidRequest` on `model`
    when the body ends without it, or when `lookahead` bytes came and it is not whole yet."""
    head = MultipartHead(boundary)
    while (chunk := await source.read()) is not None:
        if head.feed(chunk):
            return head
        if head.ended:
            break
        if len(head.buffer) > lookahead:
            raise InvalidRequest(f"No `model` field in the first {lookahead} bytes of the form: send `model` "
                                 "before `file` (the gateway streams the file to the worker it chooses by model).",
                                 param="model", code="missing_required_parameter")
    raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")


class AudioSurface(PassThroughSurface):
    """What the two audio surfaces share: a streamed multipart upload, answered in the worker's shapes
    (nothing cached or captured, as for every pass-through surface)."""

    text_fields = ()
    upload_doc: ClassVar[str] = "the audio file (flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, or webm)"

    def decode(self, raw: bytes) -> InferenceRequest:
        raise InvalidRequest(f"{self.title} takes a multipart/form-data upload.", code="invalid_content_type")

    def upload_request(self, head: MultipartHead, upload: StreamedUpload) -> InferenceRequest:
        """The request of an upload whose head was read: its text fields so far (checked) as the body."""
        body: Body = dict(head.fields)
        self.check(body)
        return InferenceRequest(self, body, False, upload=upload)

    def check(self, body: Body) -> None:
        response_format = body.get("response_format")
        if response_format is not None and response_format not in RESPONSE_FORMATS:
            raise InvalidRequest(f"'response_format' must be one of {', '.join(RESPONSE_FORMATS)}.",
                                 param="response_format", code="invalid_value")
        stream = body.get("stream")
        if stream is not None and stream.lower() not in _BOOLEANS:
            raise InvalidRequest("'stream' must be true or false.", param="stream", code="invalid_type")
        temperature = body.get("temperature")
        if temperature is not None:
            try:
                float(temperature)
            except ValueError:
                raise InvalidRequest("'temperature' must be a number.", param="temperature",
                                     code="invalid_type") from None

    def prompt_tokens_estimate(self, body: Body) -> int:
        return 0  # no text: routing rules and prefix affinity see none either (`text_fields` is empty)


def _form_schema(extra: dict[str, object]) -> dict[str, object]:
    return {"type": "object", "required": ["file", "model"], "properties": {
        "file": {"type": "string", "format": "binary", "description": AudioSurface.upload_doc},
        "model": {"type": "string", "description": "A catalog model or alias (required: a form without it is a "
                  "400; empty: the catalog's default, routing rules having no text to match)"},
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "stream": {"type": "boolean", "default": False,
                   "description": "SSE events `transcript.text.delta` and `transcript.text.done`"},
        **extra}}


_PASSED_ON = ("Streamed to a worker of the model as it arrives (`model` rewritten to the worker's id; send it "
              "before `file`); the answer comes back as the worker wrote it.")


class AudioTranscriptions(AudioSurface):
    name = "audio/transcriptions"
    paths = ("/v1/audio/transcriptions",)
    title = "Audio transcriptions"
    doc = RequestDoc(
        summary="Transcribe audio into text",
        schema=_form_schema({"language": {"type": "string", "description": "ISO-639-1, e.g. `en`"},
                             "timestamp_granularities[]": {"type": "array",
                                                           "items": {"type": "string", "enum": ["word", "segment"]}}}),
        example={"model": "whisper", "file": "(binary)", "response_format": "json"},
        description=_PASSED_ON)


class AudioTranslations(AudioSurface):
    name = "audio/translations"
    paths = ("/v1/audio/translations",)
    title = "Audio translations"
    doc = RequestDoc(summary="Translate audio into English text", schema=_form_schema({}),
                     example={"model": "whisper", "file": "(binary)"}, description=_PASSED_ON)


AUDIO_TRANSCRIPTIONS = AudioTranscriptions()
AUDIO_TRANSLATIONS = AudioTranslations()
AUDIO_SURFACES: tuple[AudioSurface, ...] = (AUDIO_TRANSCRIPTIONS, AUDIO_TRANSLATIONS)
"""Served by their own routes (`gateway.http.routes.audio`), not the JSON surfaces' registry."""
