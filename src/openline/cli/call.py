"""``openline call AGENT --input caller.wav --output conversation.wav``.

Plays a WAV file as the caller over the real STS WebSocket, in real time; saves both sides
(caller left, assistant right) as heard by the client; prints the transcript and per-turn
latencies. Without ``--url`` it starts an embedded server in this process (loading the
models, with progress) and uses it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
import websockets

from openline.audio.mix import to_stereo
from openline.audio.resample import resample
from openline.audio.wav import read_wav, write_wav
from openline.settings import Settings

RATE = 16_000
CHUNK = RATE // 50  # 20 ms
TAIL_SILENCE_S = 8.0


@dataclass
class CallLog:
    t0: float = field(default_factory=time.monotonic)
    transcript: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    assistant: list[tuple[float, np.ndarray]] = field(default_factory=list)
    speaking: bool = False
    finished_at: float | None = None
    turn_end: float | None = None
    ended_by: str | None = None


def _caller_audio(path: Path) -> np.ndarray:
    samples, rate = read_wav(path)
    if samples.ndim == 2:
        samples = samples.mean(axis=1).astype(np.int16)
    return samples if rate == RATE else np.asarray(resample(samples, rate, RATE), np.int16)


async def _send_audio(ws: Any, audio: np.ndarray, log: CallLog) -> None:
    tail = np.zeros(int(RATE * TAIL_SILENCE_S), dtype=np.int16)
    stream = np.concatenate([audio, tail])
    start = time.monotonic()
    for i in range(0, stream.size, CHUNK):
        due = start + i / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        payload = base64.b64encode(stream[i:i + CHUNK].tobytes()).decode()
        await ws.send(json.dumps({"type": "audio_chunk", "audio": payload}))
        quiet = log.finished_at is not None and time.monotonic() - log.finished_at > 2.0
        if i >= audio.size and quiet and not log.speaking:
            return


def _on_message(msg: dict[str, Any], log: CallLog) -> None:
    now = time.monotonic()
    kind = msg.get("type")
    if kind == "input_text":
        log.transcript.append(f"User: {msg['text']}")
    elif kind == "user_finished_speaking":
        log.turn_end = now
    elif kind == "assistant_started_speaking":
        log.speaking = True
        log.transcript.append("Assistant:")
    elif kind == "assistant_finished_speaking":
        log.speaking, log.finished_at = False, now
    elif kind == "audio_chunk":
        pcm = np.frombuffer(base64.b64decode(msg["audio"]), dtype=np.int16)
        log.assistant.append((now - log.t0, pcm))
        if msg.get("text") and log.transcript:
            log.transcript[-1] += " " + msg["text"]
        timings = msg.get("timings")
        if timings and log.turn_end is not None:
            voiced_end = log.turn_end - timings.get("endpointing_ms", 0) / 1000
            log.latencies_ms.append(round((now - voiced_end) * 1000))
            log.turn_end = None
    elif kind == "error":
        print(f"  server error: {msg['error']['message']}", flush=True)


async def call(url: str, api_key: str, agent: str, wav_in: Path, wav_out: Path) -> CallLog:
    audio = _caller_audio(wav_in)
    log = CallLog()
    ws_url = url.replace("http", "ws", 1).rstrip("/") + "/v1/sts/ws"
    async with websockets.connect(
            ws_url, additional_headers={"Authorization": f"Bearer {api_key}"}) as ws:
        await ws.send(json.dumps({"type": "config", "agent": agent,
                                  "input_format": "pcm_16000", "output_format": "pcm_16000"}))
        log.t0 = time.monotonic()
        sender = asyncio.create_task(_send_audio(ws, audio, log))
        try:
            async for raw in ws:
                _on_message(json.loads(raw), log)
                if sender.done():
                    break
        except websockets.ConnectionClosed as closed:
            log.ended_by = closed.reason or str(closed.code)
        finally:
            sender.cancel()
    _save(audio, log, wav_out)
    return log


def _save(caller: np.ndarray, log: CallLog, path: Path) -> None:
    end = max([caller.size] + [int(t * RATE) + p.size for t, p in log.assistant])
    right = np.zeros(end, dtype=np.int16)
    for t, pcm in log.assistant:
        start = int(t * RATE)
        right[start:start + pcm.size] = pcm
    write_wav(path, to_stereo(caller, right), RATE)


def _embedded_server(settings: Settings) -> tuple[uvicorn.Server, str, str]:
    """Start Openline in this process (models load with progress); returns (server, url, key)."""
    from openline.boot.server import create_app

    key = settings.api_key or "ol_call_" + str(int(time.time()))
    settings.api_key = key
    app = create_app(settings, announce_key=False, verbose=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port,
                                           log_level="warning", ws_per_message_deflate=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the embedded server failed to start")
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{settings.port}", key


def run(settings: Settings, agent: str, wav_in: Path, wav_out: Path, url: str | None,
        api_key: str | None) -> int:
    server = None
    if url is None:
        server, url, api_key = _embedded_server(settings)
    if not api_key:
        print("error: --api-key (or OPENLINE_API_KEY) is required with --url")
        return 2
    try:
        log = asyncio.run(call(url, api_key, agent, wav_in, wav_out))
    finally:
        if server is not None:
            server.should_exit = True
    print("\n".join(log.transcript))
    for i, ms in enumerate(log.latencies_ms, 1):
        print(f"turn {i}: {ms} ms voice-to-voice")
    print(f"saved {wav_out} (caller left, assistant right)")
    return 0
