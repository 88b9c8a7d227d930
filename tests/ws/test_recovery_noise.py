"""Crash recovery of open conversations, and synthesized background noise on the wire."""

from __future__ import annotations

import base64
import gzip
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from openline.audio.wav import read_wav_bytes
from openline.voice.recorder import Recorder
from tests.conftest import start_server
from tests.seed import aseed_conversations
from tests.ws.conftest import ServerFactory, collect, config, sdk


async def test_conversations_left_open_by_a_crash_are_closed_at_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    first = start_server(url, tmp_path)
    [open_id] = await aseed_conversations(url, "main", [{"live": True}])
    first.stop()
    # The "crash": the engine had written raw tracks and never finished the recording.
    tracks = Recorder(tmp_path / "recordings", open_id)
    tracks.caller(np.full(16000, 1000, np.int16))
    tracks.assistant(np.full(8000, -2000, np.int16), 16000, time.monotonic())
    del tracks  # no save(): the process died
    second = start_server(url, tmp_path)
    try:
        conv = (await sdk(second).conversations.get(open_id)).conversation
        assert conv.ended_by == "error" and conv.ended_at is not None
        assert conv.items[0].live_transcript == "hi"  # nothing stored was lost
        async with httpx.AsyncClient() as http:
            wav = await http.get(conv.audio_url.replace("container=wav.gz", "container=wav"))
        assert wav.status_code == 403  # the link is signed for wav.gz
        async with httpx.AsyncClient() as http:
            gz = await http.get(conv.audio_url)
        stereo, rate = read_wav_bytes(gzip.decompress(gz.content))
        assert rate == 16000 and stereo.shape[1] == 2
        assert stereo[:16000, 0].tolist() == [1000] * 16000  # caller, left
        assert (stereo[:, 1] == -2000).sum() == 8000  # assistant, right
    finally:
        second.stop()


async def test_background_noise_flows_while_nobody_speaks(make_server: ServerFactory) -> None:
    server = make_server()
    seen: list[Any] = []
    async with sdk(server).conversations.connect() as socket:
        await socket.send_config(config(background_noise="office", background_noise_level=0.1))
        await collect(socket, "ready_to_start_conversation", seen)
        for _ in range(30):
            await collect(socket, "audio_chunk", seen)
    chunks = [m for m in seen if getattr(m, "type", "") == "audio_chunk"]
    samples = np.frombuffer(b"".join(base64.b64decode(m.audio) for m in chunks), np.int16)
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) / 32768
    assert len(chunks) == 30 and 0.03 < rms < 0.2
    assert all(m.text == "" for m in chunks)  # noise only, no words
