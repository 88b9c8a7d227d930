"""Extraction schemas and voices through the official SDK."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from phonic import AsyncPhonic, Phonic
from phonic.errors import BadRequestError, ConflictError, NotFoundError

from tests.conftest import LiveServer

SEED_FIELDS: list[Any] = [
    {"name": "Date", "type": "string", "description": "The date of the appointment"},
    {"name": "Copay", "type": "string",
     "description": "Amount of money the patient pays for the appointment"},
    {"name": "Confirmed as booked", "type": "bool",
     "description": "Is the appointment confirmed as booked?"},
]


def test_seed_extraction_schema_example(client: Phonic, project: str) -> None:
    created = client.extraction_schemas.create(
        project=project, name="Appointment details",
        prompt="Dates should be in `9 Apr 2025` format. Prices should be in $150.00 format.",
        fields=SEED_FIELDS,
    )
    assert created.id.startswith("conv_extract_schema_")
    schema = client.extraction_schemas.get(created.id).extraction_schema
    assert schema.name == "Appointment details"
    assert [(f.name, f.type) for f in schema.fields] == [
        ("Date", "string"), ("Copay", "string"), ("Confirmed as booked", "bool")]
    listed = client.extraction_schemas.list(project=project).extraction_schemas
    assert [s.id for s in listed] == [created.id]
    assert client.extraction_schemas.update(created.id, prompt="New prompt",
                                            fields=[{"name": "Tags", "type": "string[]",
                                                     "description": None}]).success
    schema = client.extraction_schemas.get("Appointment details", project=project)
    assert schema.extraction_schema.prompt == "New prompt"
    assert schema.extraction_schema.fields[0].type == "string[]"
    assert client.extraction_schemas.delete(created.id).success
    with pytest.raises(NotFoundError):
        client.extraction_schemas.get(created.id)


def test_schema_validation(client: Phonic, http: httpx.Client, project: str) -> None:
    r = http.post("/extraction_schemas", params={"project": project},
                  json={"name": "x", "prompt": "p", "fields": [{"name": "a", "type": "date"}]})
    assert r.status_code == 400 and "fields.0.type" in r.json()["param_errors"]
    r = http.post("/extraction_schemas", params={"project": project},
                  json={"name": "x", "fields": [{"name": "a", "type": "int"},
                                                {"name": "a", "type": "float"}]})
    assert r.status_code == 400 and "fields" in r.json()["param_errors"]
    client.extraction_schemas.create(project=project, name="one", prompt="p", fields=[])
    with pytest.raises(ConflictError):
        client.extraction_schemas.create(project=project, name="one", prompt="p", fields=[],
                                         request_options={"max_retries": 0})
    with pytest.raises(BadRequestError):
        client.extraction_schemas.update("one", project=project,
                                         fields=[{"name": "z", "type": "nope"}])
    assert http.get("/extraction_schemas", params={"project": project}).json()[
        "extraction_schemas"][0]["fields"] == []


async def test_schemas_async(aclient: AsyncPhonic, project: str) -> None:
    created = await aclient.extraction_schemas.create(project=project, name="a", prompt="p",
                                                      fields=SEED_FIELDS[:1])
    got = await aclient.extraction_schemas.get(created.id)
    assert got.extraction_schema.fields[0].description == "The date of the appointment"
    assert (await aclient.extraction_schemas.delete(created.id)).success


def test_voices_are_the_installed_ones(client: Phonic, http: httpx.Client) -> None:
    voices = client.voices.list().voices
    assert [v.id for v in voices] == ["ava", "joe"]  # the test server's (fake) TTS voices
    assert client.voices.get("joe").voice.name == "Joe"
    with pytest.raises(NotFoundError):
        client.voices.get("no-such-voice")
    r = http.get("/voices/grant")
    assert r.status_code == 404 and r.json()["error"]["message"] == "Voice not found"


async def test_tts_endpoints(aclient: AsyncPhonic, live_server: LiveServer) -> None:
    import base64

    preview = await aclient.voices.preview(text="Hello there.", voice_id="joe",
                                           output_format="pcm_16000", speed=1.0)
    pcm = base64.b64decode(preview.audio)
    # The fake TTS speaks 20 ms of tone per character: 12 characters = 0.24 s at 16 kHz.
    assert abs(len(pcm) // 2 - 3840) < 400
    chunks = [c async for c in aclient.tts.stream(text="Hi. Bye.", voice_id="ava",
                                                  output_format="mulaw_8000")]
    assert sum(len(c) for c in chunks) > 0  # mu-law: one byte per sample
    async with httpx.AsyncClient(base_url=f"{live_server.url}/v1", headers={
            "Authorization": f"Bearer {live_server.api_key}"}) as http:
        # Phonic's default voice "grant" is not installed: the default voice speaks instead.
        assert (await http.post("/tts", json={"text": "Hi."})).status_code == 200
        for body, field in (({"text": ""}, "text"), ({"text": "x", "speed": 2}, "speed"),
                            ({"text": "x", "output_format": "mp3"}, "output_format")):
            r = await http.post("/tts", json=body)
            assert r.status_code == 400 and field in r.json()["param_errors"]


async def test_voice_preview_links(aclient: AsyncPhonic) -> None:
    from openline.audio.wav import read_wav_bytes

    voice = (await aclient.voices.get("ava")).voice
    assert voice.audio_url and "/v1/voices/ava/preview?" in voice.audio_url
    async with httpx.AsyncClient() as http:
        ok = await http.get(voice.audio_url)  # no API key: the link is the credential
        forged = await http.get(voice.audio_url.replace("/ava/", "/joe/"))
    samples, rate = read_wav_bytes(ok.content)
    assert ok.status_code == 200 and rate == 24000 and samples.size > 24000
    assert forged.status_code == 403
