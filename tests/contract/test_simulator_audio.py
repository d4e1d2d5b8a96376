"""The simulated vLLM's audio endpoints (`simulator.vllm_audio`), called directly with the openai SDK: the
answer states the audio's size in every response format and as OpenAI's streaming events, and the form is
read as it streams in, whatever pieces the body comes in (`simulator.multipart_form`)."""

from __future__ import annotations

import httpx
import openai
import pytest

from simulator import SimulatorThread
from simulator.multipart_form import StreamedForm
from tests.conftest import SIM_MODEL

AUDIO = bytes(range(256)) * 40 + b"\r\n--not-the-boundary\r\n"


def encoded(boundary: str = "xyz0") -> bytes:
    return httpx.Request("POST", "http://x/", data={"model": SIM_MODEL, "language": "fr"},
                         files={"file": ("a.wav", AUDIO)},
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}).read()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_the_form_is_read_whatever_pieces_it_comes_in(size: int) -> None:
    body = encoded()
    form = StreamedForm(b"xyz0")
    for i in range(0, len(body), size):
        form.feed(body[i:i + size])
    assert form.ended and form.file_bytes == len(AUDIO)
    assert form.fields == {"model": SIM_MODEL, "language": "fr", "file": "a.wav"}


def test_every_response_format_states_the_audio_size(sim: SimulatorThread) -> None:
    client = openai.OpenAI(base_url=sim.url + "/v1", api_key="unused", max_retries=0)
    file = ("a.wav", AUDIO)
    expected = f"transcribed {len(AUDIO)} bytes"
    assert client.audio.transcriptions.create(model=SIM_MODEL, file=file).text == expected
    assert client.audio.transcriptions.create(model=SIM_MODEL, file=file, response_format="text").strip() == expected
    verbose = client.audio.transcriptions.create(model=SIM_MODEL, file=file, response_format="verbose_json")
    assert verbose.text == expected and verbose.language == "en"
    for response_format in ("srt", "vtt"):
        assert expected in client.audio.transcriptions.create(model=SIM_MODEL, file=file,
                                                              response_format=response_format)
    events = list(client.audio.transcriptions.create(model=SIM_MODEL, file=file, stream=True))
    assert events[-1].type == "transcript.text.done" and events[-1].text == expected
    [record] = [r for r in sim.records if r.upload_bytes is not None][:1]
    assert record.upload_bytes == len(AUDIO) and record.body is not None and record.body["model"] == SIM_MODEL


def test_a_body_that_is_not_a_form_or_an_unknown_model_is_refused(sim: SimulatorThread) -> None:
    not_a_form = httpx.post(sim.url + "/v1/audio/transcriptions", json={"model": SIM_MODEL})
    assert not_a_form.status_code == 400
    unknown = httpx.post(sim.url + "/v1/audio/transcriptions", data={"model": "nope"}, files={"file": ("a", b"x")})
    assert unknown.status_code == 404
