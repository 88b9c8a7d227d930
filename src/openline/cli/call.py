"""``openline call AGENT --input caller.wav --output conversation.wav``.

Plays a WAV file as the caller over the real STS WebSocket, in real time; saves both sides
(caller left, assistant right) as heard by the client; prints the transcript and per-turn
latencies. Without ``--url`` it starts an embedded server in this process (loading the
models, with progress) and uses it.

When the file has been played, the caller keeps the line open (sending silence, as a phone
would) until the assistant has answered and been quiet for ``QUIET_S``, then hangs up with a
normal close, so the server stores ``ended_by: "user"``. The wait is bounded: ``TAIL_S`` for
a reply to start, ``MAX_TAIL_S`` in all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from openline.audio.mix import to_stereo
from openline.audio.resample import resample
from openline.audio.wav import read_wav, write_wav
from openline.settings import Settings

RATE = 16_000
CHUNK = RATE // 50  # 20 ms
QUIET_S = 2.0  # quiet after the last reply before hanging up
TAIL_S = 8.0  # the longest wait, after the file, for the assistant to start a reply
MAX_TAIL_S = 60.0  # the longest the call goes on after the file, whatever happens
CONNECT_TIMEOUT_S = 10.0


class CallFailed(Exception):
    """The call could not be made (no server, refused, ...): a one-line reason."""


@dataclass
class CallLog:
    t0: float = field(default_factory=time.monotonic)
    transcript: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    assistant: list[tuple[float, np.ndarray]] = field(default_factory=list)
    speaking: bool = False
    #: the caller spoke and the assistant has not answered (or declined) yet
    awaiting_reply: bool = False
    last_event_at: float = field(default_factory=time.monotonic)
    turn_end: float | None = None
    conversation_id: str | None = None
    ended_by: str | None = None
    errors: list[str] = field(default_factory=list)


def _caller_audio(path: Path) -> np.ndarray:
    samples, rate = read_wav(path)
    if samples.ndim == 2:
        samples = samples.mean(axis=1).astype(np.int16)
    return samples if rate == RATE else np.asarray(resample(samples, rate, RATE), np.int16)


def _finished(log: CallLog, played_at: float, now: float) -> bool:
    """After the file: hang up once the reply is over and the line has been quiet."""
    since_file = now - played_at
    if since_file >= MAX_TAIL_S:
        return True
    if log.speaking:
        return False
    if log.awaiting_reply:
        return since_file >= TAIL_S and now - log.last_event_at >= TAIL_S
    return now - max(played_at, log.last_event_at) >= QUIET_S


async def _send_audio(ws: ClientConnection, audio: np.ndarray, log: CallLog) -> None:
    """The caller: the file in real time, then silence until ``_finished``."""
    silence = base64.b64encode(np.zeros(CHUNK, np.int16).tobytes()).decode()
    start = time.monotonic()
    played_at: float | None = None
    i = 0
    while True:
        await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
        if i < audio.size:
            payload = base64.b64encode(audio[i:i + CHUNK].tobytes()).decode()
        else:
            played_at = played_at or time.monotonic()
            if _finished(log, played_at, time.monotonic()):
                return
            payload = silence
        await ws.send(json.dumps({"type": "audio_chunk", "audio": payload}))
        i += CHUNK


def _on_message(msg: dict[str, Any], log: CallLog) -> None:
    now = time.monotonic()
    kind = msg.get("type")
    if kind != "audio_chunk" or msg.get("text"):
        log.last_event_at = now  # silence-only audio does not count as activity
    if kind == "conversation_created":
        log.conversation_id = msg.get("conversation_id")
    elif kind == "input_text":
        log.transcript.append(f"User: {msg['text']}")
    elif kind in ("user_started_speaking", "user_finished_speaking"):
        log.awaiting_reply = True
        if kind == "user_finished_speaking":
            log.turn_end = now
    elif kind == "assistant_started_speaking":
        log.speaking = True
        log.transcript.append("Assistant:")
    elif kind in ("assistant_finished_speaking", "assistant_chose_not_to_respond",
                  "input_cancelled"):
        log.speaking = log.awaiting_reply = False
    elif kind == "audio_chunk":
        _on_audio(msg, log, now)
    elif kind == "error":
        log.errors.append(str(msg.get("error", {}).get("message", msg)))
        print(f"  server error: {log.errors[-1]}", file=sys.stderr, flush=True)


def _on_audio(msg: dict[str, Any], log: CallLog, now: float) -> None:
    pcm = np.frombuffer(base64.b64decode(msg["audio"]), dtype=np.int16)
    log.assistant.append((now - log.t0, pcm))
    if msg.get("text") and log.transcript:
        log.transcript[-1] += " " + msg["text"]
    timings = msg.get("timings")
    if timings and log.turn_end is not None:
        voiced_end = log.turn_end - timings.get("endpointing_ms", 0) / 1000
        log.latencies_ms.append(round((now - voiced_end) * 1000))
        log.turn_end = None


async def _receive(ws: ClientConnection, log: CallLog) -> None:
    """Everything the server says, until either side closes the socket."""
    try:
        async for raw in ws:
            _on_message(json.loads(raw), log)
    except ConnectionClosed:
        pass
    if log.ended_by is None:  # the server ended the call: its close reason is ended_by
        log.ended_by = ws.close_reason or str(ws.close_code)


async def _open(url: str, api_key: str) -> ClientConnection:
    ws_url = url.replace("http", "ws", 1).rstrip("/") + "/v1/sts/ws"
    try:
        return await connect(ws_url, additional_headers={"Authorization": f"Bearer {api_key}"},
                             open_timeout=CONNECT_TIMEOUT_S, max_size=None)
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = " (check --api-key)" if status in (401, 403) else ""
        raise CallFailed(f"the server at {url} refused the call: HTTP {status}{hint}") from exc
    except InvalidURI as exc:
        raise CallFailed(f"not a server URL: {url}") from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise CallFailed(f"cannot connect to {url}: {reason} "
                         "(is the server running? start it with `openline serve`)") from exc


async def call(url: str, api_key: str, agent: str, wav_in: Path, wav_out: Path) -> CallLog:
    """Make the call; returns what was said and heard (and writes ``wav_out``)."""
    audio = _caller_audio(wav_in)
    log = CallLog()
    ws = await _open(url, api_key)
    async with ws:
        await ws.send(json.dumps({"type": "config", "agent": agent,
                                  "input_format": "pcm_16000", "output_format": "pcm_16000"}))
        log.t0 = time.monotonic()
        sender = asyncio.create_task(_send_audio(ws, audio, log), name="call-sender")
        receiver = asyncio.create_task(_receive(ws, log), name="call-receiver")
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if sender.done() and not receiver.done():
            if sender.exception() is None:
                log.ended_by = "user"
            await ws.close(1000, "caller hung up")  # normal close: the server ends it as "user"
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await receiver
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
    """``openline call``: 0 when the call was made, 1 (one line on stderr) when not."""
    if url is not None and not api_key:
        print("error: --api-key (or OPENLINE_API_KEY) is required with --url", file=sys.stderr)
        return 2
    try:
        _caller_audio(wav_in)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the caller audio {wav_in}: {exc}", file=sys.stderr)
        return 1
    server = None
    if url is None:
        server, url, api_key = _embedded_server(settings)
    try:
        log = asyncio.run(call(url, str(api_key), agent, wav_in, wav_out))
    except CallFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.should_exit = True
    print("\n".join(log.transcript))
    for i, ms in enumerate(log.latencies_ms, 1):
        print(f"turn {i}: {ms} ms voice-to-voice")
    if log.conversation_id is None:
        reason = log.errors[-1] if log.errors else f"closed: {log.ended_by}"
        print(f"error: the conversation did not start ({reason})", file=sys.stderr)
        return 1
    print(f"conversation {log.conversation_id} ended by {log.ended_by}")
    print(f"saved {wav_out} (caller left, assistant right)")
    return 0
