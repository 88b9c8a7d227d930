"""Vapi's WebSocket transport (``transport.provider: "vapi.websocket"``) as a call transport.

The wire (Vapi API spec, section 7.1):

* **binary frames** carry audio both ways in the format negotiated at ``POST /call``
  (``transport.audioFormat``): mono 16-bit little-endian PCM (``pcm_s16le``) or 8-bit
  μ-law, ``raw`` container, at the call's sample rate. The call runs in that format, so
  frames go to the engine and back as they are.
* **text frames** are JSON. From the client: control messages (section 7.4: ``say``,
  ``add-message``, ``control``, ``end-call`` / ``hangup``, ``transfer``); from the server:
  the call's client messages (``transcript``, ``speech-update``, ``status-update``, ...),
  each message object itself, as the web SDK sends them (``send_message``).

Bad input gets ``{"type": "error", "error": ...}`` and the call goes on; closing the
socket ends the call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from openline.audio.codecs import WIRE_FORMATS, AudioFormat
from openline.transports import base as tb
from openline.voice import events as ev
from openline.voice.io import AudioSink
from openline.voice.tools import PhoneTransfer

log = logging.getLogger(__name__)

#: the largest text frame accepted from the client (control messages are small)
MAX_TEXT_CHARS = 64 * 1024
#: the largest audio frame accepted: one second of the loudest format (44.1 kHz PCM16)
MAX_AUDIO_BYTES = 44100 * 2
#: ``audioFormat.format`` -> (encoding, default sample rate)
FORMATS = {"pcm_s16le": ("pcm16", 16000), "mulaw": ("mulaw", 8000)}


class SocketClosed(Exception):
    """The client closed the socket (or it broke)."""


class BinarySocket(Protocol):
    """What the transport needs of a WebSocket: text and binary frames both ways."""

    async def receive(self) -> str | bytes: ...

    async def send_text(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class InvalidAudioFormat(ValueError):
    """``transport.audioFormat`` names a format this server cannot run."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def wire_format(audio_format: dict[str, Any] | None) -> AudioFormat:
    """The engine format of a Vapi ``audioFormat`` (defaults: PCM 16 kHz; μ-law 8 kHz).

    Raises ``InvalidAudioFormat`` for a format, container or rate that has no exact engine
    format (resampling on the socket is not offered: the client gets a clear refusal)."""
    spec = audio_format or {}
    kind = spec.get("format", "pcm_s16le")
    if kind not in FORMATS:
        raise InvalidAudioFormat(f"audioFormat.format must be one of {', '.join(FORMATS)}",
                                 "transport.audioFormat.format")
    if spec.get("container", "raw") != "raw":
        raise InvalidAudioFormat("audioFormat.container must be 'raw'",
                                 "transport.audioFormat.container")
    encoding, default_rate = FORMATS[kind]
    rate = spec.get("sampleRate", default_rate)
    matches = [f for f in WIRE_FORMATS.values()
               if f.encoding == encoding and f.sample_rate == rate]
    if isinstance(rate, bool) or not matches:
        rates = sorted(f.sample_rate for f in WIRE_FORMATS.values() if f.encoding == encoding)
        raise InvalidAudioFormat(
            f"audioFormat.sampleRate for {kind} must be one of "
            f"{', '.join(map(str, rates))}", "transport.audioFormat.sampleRate")
    return matches[0]


def error_message(message: str) -> dict[str, Any]:
    return {"type": "error", "error": message}


# ----- control messages (client -> call) ---------------------------------------------------


@dataclass(frozen=True)
class EndCall:
    """``end-call`` (or the older ``hangup``): end the call now."""


@dataclass(frozen=True)
class SayThenEnd:
    """``say`` with ``endCallAfterSpoken``: speak, then end once it has been heard."""

    say: tb.Say


Command = tb.Control | EndCall | SayThenEnd | tuple[tb.Control, ...]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _say(msg: dict[str, Any]) -> Command | str:
    # The web SDK sends the text under ``message``; the docs under ``content``.
    text = _text(msg.get("content")) or _text(msg.get("message"))
    if text is None:
        return "say needs 'content' (text to speak)"
    if msg.get("interruptAssistantEnabled") is True:
        return "interruptAssistantEnabled is not supported: the text is queued after " \
               "what the assistant is saying"
    say = tb.Say(text, interruptible=msg.get("interruptionsEnabled") is not False)
    return SayThenEnd(say) if msg.get("endCallAfterSpoken") is True else say


def _add_message(msg: dict[str, Any]) -> Command | str:
    message = msg.get("message")
    if not isinstance(message, dict):
        return "add-message needs 'message': {role, content}"
    role, content = message.get("role"), _text(message.get("content"))
    if content is None:
        return "add-message needs message.content"
    respond = msg.get("triggerResponseEnabled") is not False
    if role == "system":
        add = tb.AddSystemMessage(content)
        return (add, tb.GenerateReply()) if respond else add
    if role == "user":
        if not respond:
            return "add-message with role 'user' needs triggerResponseEnabled: true " \
                   "(a user message is answered)"
        return tb.GenerateReply(user_message=content)
    return "add-message supports the roles 'system' and 'user'"


_CONTROL_WORDS: dict[str, tb.Control] = {"mute-customer": tb.Mute(),
                                         "unmute-customer": tb.Unmute()}


def _control(msg: dict[str, Any]) -> Command | str:
    word = msg.get("control")
    command = _CONTROL_WORDS.get(word) if isinstance(word, str) else None
    if command is None:
        return f"control must be one of {', '.join(_CONTROL_WORDS)}"
    return command


def parse_control(msg: Any) -> Command | str:
    """One Vapi control message as a command, or the error to answer with."""
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return "messages must be JSON objects with a string 'type'"
    kind = msg["type"]
    if kind in ("end-call", "hangup"):
        return EndCall()
    parse = {"say": _say, "add-message": _add_message, "control": _control}.get(kind)
    if kind == "transfer":
        return "transfer is not available on this call (it has no phone line)"
    if parse is None:
        return f"unknown message type {kind!r}; known: say, add-message, control, end-call"
    return parse(msg)


# ----- the transport -------------------------------------------------------------------------

#: notified of every engine event before it is encoded (the dialect's call messages)
EventTap = Callable[[ev.EngineEvent], Awaitable[None]]
#: applies a parsed command to the call (the dialect's live call: ``say`` then end, ...)
CommandRunner = Callable[[Command, tb.CallInput], Awaitable[None]]


class VapiWsTransport:
    """One client socket of a ``vapi.websocketCall``."""

    def __init__(self, socket: BinarySocket, fmt: AudioFormat,
                 run_command: CommandRunner | None = None) -> None:
        self.socket, self.fmt = socket, fmt
        self.run_command = run_command or apply_command
        self._lock = asyncio.Lock()
        self.closed = False

    async def send_message(self, message: dict[str, Any]) -> None:
        """A client message (JSON text frame); dropped once the client is gone."""
        await self._send(json.dumps(message, separators=(",", ":"), default=str))

    async def _send(self, frame: str | bytes) -> None:
        if self.closed:
            return
        async with self._lock:
            try:
                if isinstance(frame, bytes):
                    await self.socket.send_bytes(frame)
                else:
                    await self.socket.send_text(frame)
            except SocketClosed:
                self.closed = True

    # ----- CallTransport ----------------------------------------------------------------
    async def send_event(self, event: ev.EngineEvent) -> None:
        if isinstance(event, ev.AudioOut):
            await self._send(event.audio)
        elif isinstance(event, ev.EngineError):
            await self.send_message(error_message(event.message))

    async def clear(self) -> None:
        """The client plays what it receives; ``user-interrupted`` tells it to stop."""
        await self.send_message({"type": "user-interrupted"})

    async def send_dtmf(self, digits: str) -> None:
        """A socket has no keypad tones to play."""

    async def transfer(self, destination: PhoneTransfer) -> bool:
        return False  # no phone line to hand over

    async def hangup(self, ended_by: str) -> None:
        if not self.closed:
            self.closed = True
            await self.socket.close(1000, ended_by[:120])

    async def resumed(self) -> None:
        """Vapi's socket has no reconnect: a new socket is a new call."""

    def audio_sink(self, output_format: AudioFormat) -> AudioSink | None:
        return None  # the engine's local pacer sends audio as it should be heard

    async def serve_input(self, call: tb.CallInput) -> None:
        """Feed the call until the client closes the socket."""
        while True:
            try:
                frame = await self.socket.receive()
            except SocketClosed:
                self.closed = True
                return
            if isinstance(frame, bytes):
                self._audio(frame, call)
            elif not await self.handle_text(frame, call):
                return

    def _audio(self, frame: bytes, call: tb.CallInput) -> None:
        if len(frame) > MAX_AUDIO_BYTES:
            log.debug("dropped an audio frame of %d bytes", len(frame))
            return
        call.push_audio(frame)

    async def handle_text(self, raw: str, call: tb.CallInput) -> bool:
        """One control message; False when it ended the call."""
        if len(raw) > MAX_TEXT_CHARS:
            await self.send_message(error_message(f"messages are at most {MAX_TEXT_CHARS} "
                                                  "characters"))
            return True
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError:
            await self.send_message(error_message("messages must be JSON"))
            return True
        command = parse_control(msg)
        if isinstance(command, str):
            await self.send_message(error_message(command))
            return True
        if isinstance(command, EndCall):
            return False  # the session ends the call when input ends
        try:
            await self.run_command(command, call)
        except tb.ControlRejected as exc:
            await self.send_message(error_message(exc.message))
        return True


async def apply_command(command: Command, call: tb.CallInput) -> None:
    """Commands that are plain controls (``SayThenEnd`` needs a live call that knows when
    speech was heard: the dialect's runner handles it)."""
    if isinstance(command, tuple):
        for part in command:
            await call.control(part)
    elif isinstance(command, SayThenEnd):
        await call.control(command.say)
    elif isinstance(command, EndCall):
        call.hangup()
    else:
        await call.control(command)
