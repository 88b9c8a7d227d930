"""Hostile and careless input on the STS socket: each case gets a precise answer, the
call (or the server) survives, and nothing beyond real time is taken in."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import logging
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from openline.audio.wav import read_wav_bytes
from tests.conftest import LiveServer
from tests.ws.conftest import RATE, ServerFactory, sdk, tone

FORMATS = {"input_format": "pcm_16000", "output_format": "pcm_16000", "voice_id": "joe"}


async def _socket(server: LiveServer) -> Any:
    return websockets.connect(f"{server.ws_url}/v1/sts/ws", max_size=None, additional_headers={
        "Authorization": f"Bearer {server.api_key}"})


async def _until(ws: Any, kind: str, within: float = 10.0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while True:
            msg = json.loads(await ws.recv())
            seen.append(msg)
            if msg["type"] == kind:
                return seen


def _healthy(server: LiveServer) -> bool:
    return httpx.get(f"{server.url}/health").json() == {"status": "ok"}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("project", 7, "must be a string"),
    ("agent", ["a"], "must be a string"),
    ("tools", "lookup", "must be a list"),
    ("input_format", ["pcm_16000"], "must be a string"),
    ("external_id", {"x": 1}, "must be a string"),
    ("template_variables", "x", "must be an object"),
    ("stream_ahead_of_real_time", "yes", "must be a boolean"),
])
async def test_config_of_the_wrong_type_is_refused_precisely(
        make_server: ServerFactory, field: str, value: Any, message: str) -> None:
    server = make_server()
    async with await _socket(server) as ws:
        await ws.send(json.dumps({"type": "config", **FORMATS, field: value}))
        [msg] = await _until(ws, "error")
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1008
    assert msg["error"]["code"] == "invalid_config"
    assert msg["param_errors"] == {field: message}
    assert _healthy(server)


async def test_odd_length_pcm_keeps_the_byte_for_the_next_chunk(
        make_server: ServerFactory) -> None:
    server = make_server(texts=["hello there"])
    audio = np.concatenate([tone(600), np.zeros(RATE, np.int16)]).tobytes()
    async with await _socket(server) as ws:
        await ws.send(json.dumps({"type": "config", **FORMATS, "welcome_message": ""}))
        created = (await _until(ws, "ready_to_start_conversation"))[0]
        # 641-byte chunks: every one splits a sample
        for i in range(0, len(audio), 641):
            await ws.send(json.dumps({"type": "audio_chunk", "audio": base64.b64encode(
                audio[i:i + 641]).decode()}))
            await asyncio.sleep(0.005)
        seen = await _until(ws, "input_text")
        assert not [m for m in seen if m["type"] == "error"]
        assert seen[-1]["text"] == "hello there"
        await _until(ws, "assistant_finished_speaking")
    conv = (await sdk(server).conversations.get(created["conversation_id"])).conversation
    async with httpx.AsyncClient() as http:
        stereo, _ = read_wav_bytes(gzip.decompress((await http.get(conv.audio_url)).content))
    caller = stereo[:, 0]
    # every sample arrived whole and in order: the caller track starts with the tone
    assert caller[: RATE * 600 // 1000].tolist() == tone(600).tolist()


async def test_audio_faster_than_real_time_is_dropped_with_a_warning(
        make_server: ServerFactory) -> None:
    server = make_server()
    chunk = base64.b64encode(tone(20).tobytes()).decode()
    async with await _socket(server) as ws:
        await ws.send(json.dumps({"type": "config", **FORMATS, "welcome_message": ""}))
        created = (await _until(ws, "ready_to_start_conversation"))[0]
        started = asyncio.get_running_loop().time()
        for _ in range(1000):  # 20 s of audio as fast as the socket takes it
            await ws.send(json.dumps({"type": "audio_chunk", "audio": chunk}))
        elapsed = asyncio.get_running_loop().time() - started
        seen = await _until(ws, "warning")
    assert seen[-1]["warning"]["code"] == "audio_faster_than_real_time"
    conv = (await sdk(server).conversations.get(created["conversation_id"])).conversation
    async with httpx.AsyncClient() as http:
        stereo, _ = read_wav_bytes(gzip.decompress((await http.get(conv.audio_url)).content))
    heard_s = int(np.count_nonzero(stereo[:, 0])) / RATE
    assert elapsed < 5  # the flood really was faster than real time
    assert heard_s <= 5.0 + elapsed + 0.1  # real time plus the 5 s burst, no more


def _blob(megabytes: int) -> str:
    return base64.b64encode(b"\0" * (megabytes * 1024 * 1024 * 3 // 4)).decode()


async def test_a_10_mb_message_is_refused_and_the_call_goes_on(
        make_server: ServerFactory) -> None:
    server = make_server()
    async with await _socket(server) as ws:
        await ws.send(json.dumps({"type": "config", **FORMATS, "welcome_message": ""}))
        await _until(ws, "ready_to_start_conversation")
        await ws.send(json.dumps({"type": "audio_chunk", "audio": _blob(10)}))
        seen = await _until(ws, "error")
        assert seen[-1]["error"]["code"] == "audio_chunk_too_large"
        await ws.send(json.dumps({"type": "say", "text": "Still here."}))
        await _until(ws, "assistant_finished_speaking")
    assert _healthy(server)


async def test_a_20_mb_message_closes_the_socket_as_too_big(make_server: ServerFactory) -> None:
    server = make_server()
    async with await _socket(server) as ws:
        await ws.send(json.dumps({"type": "config", **FORMATS, "welcome_message": ""}))
        created = (await _until(ws, "ready_to_start_conversation"))[0]
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(json.dumps({"type": "audio_chunk", "audio": _blob(20)}))
            await _until(ws, "never", within=10)
    assert ws.close_code == 1009  # over the socket's 16 MiB frame limit
    conv = (await sdk(server).conversations.get(created["conversation_id"])).conversation
    assert conv.ended_by == "user" and _healthy(server)


async def test_an_api_key_in_the_query_string_is_refused(make_server: ServerFactory) -> None:
    server = make_server()
    for param in ("session_token", "conversation_token"):
        url = f"{server.ws_url}/v1/sts/ws?{param}={server.api_key}"
        with pytest.raises(websockets.InvalidStatus) as denied:
            async with websockets.connect(url):
                pass
        assert denied.value.response.status_code == 403
        assert b"query string" in denied.value.response.body
    assert _healthy(server)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_credentials_in_query_strings_never_reach_the_logs(make_server: ServerFactory) -> None:
    make_server()  # installs the filter as `openline serve` does
    access, lines = logging.getLogger("uvicorn.access"), _Lines()
    level = access.level
    access.addHandler(lines)
    access.setLevel(logging.INFO)
    try:
        # the record exactly as uvicorn's access log writes it
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    "/v1/sts/ws?session_token=ph_session_SECRET&x=1&jwt=eyJ.SECRET", "1.1", 101)
    finally:
        access.removeHandler(lines)
        access.setLevel(level)
    [line] = lines.lines
    assert "SECRET" not in line
    assert "session_token=[redacted]&x=1&jwt=[redacted]" in line


@pytest.mark.parametrize(("frame", "code"), [
    ("{not json", "invalid_json"),
    ('["a list"]', "invalid_message"),
    ('{"type": 7}', "invalid_message"),
    (b"\x00\x01binary", "invalid_json"),
    ('{"type": "config", "input_format": "pcm_16000"}', "already_configured"),
    ('{"type": "say"}', "invalid_message"),
    ('{"type": "tool_call_output", "tool_call_id": "nope", "output": 1}', "unknown_tool_call"),
])
async def test_bad_frames_get_one_precise_error_and_the_call_goes_on(
        make_server: ServerFactory, frame: str | bytes, code: str) -> None:
    server = make_server()
    async with await _socket(server) as ws:
        await ws.send(json.dumps({"type": "config", **FORMATS, "welcome_message": ""}))
        await _until(ws, "ready_to_start_conversation")
        await ws.send(frame)
        seen = await _until(ws, "error")
        assert seen[-1]["error"]["code"] == code
        await ws.send(json.dumps({"type": "say", "text": "Still here."}))
        seen = await _until(ws, "assistant_finished_speaking")
        assert not [m for m in seen if m["type"] == "error"]
        assert ws.close_code is None
    assert _healthy(server)


async def test_audio_before_config_is_refused_until_config_arrives(
        make_server: ServerFactory) -> None:
    server = make_server()
    chunk = base64.b64encode(tone(20).tobytes()).decode()
    async with await _socket(server) as ws:
        for _ in range(3):
            await ws.send(json.dumps({"type": "audio_chunk", "audio": chunk}))
            assert json.loads(await ws.recv())["error"]["code"] == "config_required"
        await ws.send(json.dumps({"type": "config", **FORMATS, "welcome_message": "Hi."}))
        seen = await _until(ws, "assistant_finished_speaking")
        assert seen[0]["type"] == "conversation_created"
    assert _healthy(server)


async def test_external_ids_are_bounded_at_config_and_mid_call(make_server: ServerFactory) -> None:
    server = make_server()
    async with await _socket(server) as ws:
        await ws.send(json.dumps({"type": "config", **FORMATS, "external_id": "x" * 257}))
        [msg] = await _until(ws, "error")
        assert msg["param_errors"] == {"external_id": "at most 256 characters"}
    async with await _socket(server) as ws:
        await ws.send(json.dumps({"type": "config", **FORMATS, "welcome_message": "",
                                  "external_id": "crm-1"}))
        created = (await _until(ws, "ready_to_start_conversation"))[0]
        await ws.send(json.dumps({"type": "set_external_id", "external_id": "y" * 300}))
        assert (await _until(ws, "error"))[-1]["param_errors"] == {
            "external_id": "at most 256 characters"}
        await ws.send(json.dumps({"type": "set_external_id", "external_id": "bad\u0000id"}))
        assert "external_id" in (await _until(ws, "error"))[-1]["param_errors"]
    conv = (await sdk(server).conversations.get(created["conversation_id"])).conversation
    assert conv.external_id == "crm-1" and _healthy(server)


async def test_a_body_too_deep_or_a_huge_integer_is_a_400(make_server: ServerFactory) -> None:
    server = make_server()
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=f"{server.url}/v1", headers=headers) as http:
        deep = await http.post("/agents", content=b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}")
        huge = await http.post("/agents", content=b'{"name": "a", "audio_speed": '
                               + b"9" * 5000 + b"}")
    for r in (deep, huge):
        assert r.status_code == 400 and r.json()["param_errors"] == {"body": "malformed JSON"}
    assert _healthy(server)
