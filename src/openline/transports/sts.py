"""The Phonic STS WebSocket protocol as a call transport: JSON frames <-> engine events
and typed controls.

The transport is socket-agnostic (``WireSocket``): the HTTP edge adapts Starlette's
WebSocket. Bad input gets an ``error`` message and the conversation goes on where it can.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from openline.audio.codecs import AudioFormat
from openline.transports import base as tb
from openline.voice import events as ev
from openline.voice.io import AudioSink
from openline.voice.tools import PhoneTransfer

log = logging.getLogger(__name__)
MAX_CHUNK_MS = 40

#: How the server closes, by ``ended_by`` (codes from the Phonic protocol).
CLOSE_CODES = {
    "assistant": 4600,
    "assistant_silence_limit_reached": 4500,
    "user_canceled": 4200,
    "error": 1011,
}
#: The client sent nothing for ``websocket_timeout_sec`` (Phonic: "no input received").
IDLE_CLOSE_CODE, IDLE_CLOSE_REASON = 4500, "websocket_timeout"


class Disconnected(Exception):
    """The client went away; ``abnormal`` when the SDK will try to reconnect."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"disconnected ({code})")
        self.code, self.reason = code, reason

    @property
    def abnormal(self) -> bool:
        """Closes after which the official SDK reconnects (protocol section 6.11). A lost
        connection reaches the server as 1006 or, through uvicorn, 1005 (no status)."""
        return self.code in (1005, 1006, 1012) or (
            self.code == 1001 and self.reason == "restarting")


class WireSocket(Protocol):
    async def receive_text(self) -> str: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def error_message(message: str, code: str | None = None,
                  param_errors: dict[str, str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if code:
        error["code"] = code
    out: dict[str, Any] = {"type": "error", "error": error}
    if param_errors:
        out["param_errors"] = param_errors
    return out


def encode(event: ev.EngineEvent) -> dict[str, Any] | None:
    """One engine event as a Phonic server->client message (None: the dialect has none)."""
    match event:
        case ev.AudioOut(audio=audio, text=text, timings=timings):
            out: dict[str, Any] = {"type": "audio_chunk",
                                   "audio": base64.b64encode(audio).decode(), "text": text}
            if timings:
                out["timings"] = timings
            return out
        case ev.InputText(text=text, language=language):
            return {"type": "input_text", "text": text, "language": language}
        case ev.InterruptedResponse(text=text):
            return {"type": "interrupted_response", "text": text}
        case ev.EngineError(message=message, code=code):
            return error_message(message, code)
        case ev.EngineWarning(message=message, code=code):
            return {"type": "warning", "warning": {"message": message, "code": code}}
        case ev.ToolCallRequest(tool_call_id=cid, tool_name=name, parameters=params):
            return {"type": "tool_call", "tool_call_id": cid, "tool_name": name,
                    "parameters": params}
        case ev.ToolCallFinished(record=record, conversation_item_role=role):
            return {"type": "tool_call_output_processed", **record.to_stored(),
                    "conversation_item_role": role}
        case ev.ToolCallInterrupted(tool_call_id=cid, tool_name=name):
            return {"type": "tool_call_interrupted", "tool_call_id": cid, "tool_name": name}
        case ev.Dtmf(digits=digits):
            return {"type": "dtmf", "digits": digits}
        case ev.ClearAudio() | ev.DtmfReceived():
            # No Phonic message: the client stops playback on user_started_speaking, and
            # its ``dtmf`` message means the assistant pressed keys, not the caller.
            return None
    return {"type": _SIMPLE[type(event)]}


_SIMPLE: dict[type, str] = {
    ev.UserStartedSpeaking: "user_started_speaking",
    ev.UserFinishedSpeaking: "user_finished_speaking",
    ev.InputCancelled: "input_cancelled",
    ev.AssistantStartedSpeaking: "assistant_started_speaking",
    ev.AssistantFinishedSpeaking: "assistant_finished_speaking",
    ev.AssistantChoseNotToRespond: "assistant_chose_not_to_respond",
    ev.AssistantEndedConversation: "assistant_ended_conversation",
}


class StsTransport:
    """One client socket of a conversation (a reconnecting client brings a new one)."""

    def __init__(self, socket: WireSocket) -> None:
        self.socket = socket
        self._lock = asyncio.Lock()
        self.closed = False
        self.fmt: AudioFormat | None = None
        self.max_chunk_bytes = 0
        self.idle_timeout_s: float | None = None

    def configure(self, input_format: AudioFormat, *, idle_timeout_s: float | None = None
                  ) -> None:
        """The conversation's input format (audio chunks are checked against it) and its
        ``websocket_timeout_sec``: a client silent that long is closed as idle."""
        self.fmt = input_format
        self.max_chunk_bytes = input_format.bytes_for_ms(MAX_CHUNK_MS)
        self.idle_timeout_s = idle_timeout_s

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message; after the client is gone, messages are dropped."""
        if self.closed:
            return
        async with self._lock:
            try:
                await self.socket.send_text(json.dumps(message, separators=(",", ":")))
            except Disconnected:
                self.closed = True

    # ----- CallTransport ----------------------------------------------------------------
    async def send_event(self, event: ev.EngineEvent) -> None:
        message = encode(event)
        if message is not None:
            await self.send(message)

    async def clear(self) -> None:
        """The client plays what it receives; ``interrupted_response`` tells it the rest."""

    async def send_dtmf(self, digits: str) -> None:
        """Keypad tones reach the client as the ``dtmf`` event itself."""

    async def transfer(self, destination: PhoneTransfer) -> bool:
        return False  # a WebSocket client has no phone line to hand over

    async def hangup(self, ended_by: str) -> None:
        if not self.closed:
            self.closed = True
            await self.socket.close(CLOSE_CODES.get(ended_by, 1000), ended_by)

    async def resumed(self) -> None:
        await self.send({"type": "conversation_reconnected"})

    def audio_sink(self, output_format: AudioFormat) -> AudioSink | None:
        return None  # the engine's local pacer: the client plays what it receives

    async def serve_input(self, call: tb.CallInput) -> None:
        """Feed client messages to the call until the client disconnects."""
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    raw = await self.socket.receive_text()
            except TimeoutError:
                await self._close_idle()
                return
            except Disconnected as gone:
                self.closed = True
                if gone.abnormal:
                    raise tb.Dropped(datetime.now(UTC)) from gone
                return
            await self.handle(raw, call)

    async def _close_idle(self) -> None:
        """``websocket_timeout_sec`` passed without a message: tell the client, close."""
        await self.send({"type": "warning", "warning": {
            "message": f"No message for {self.idle_timeout_s:g} s (websocket_timeout_sec); "
                       "closing the conversation", "code": IDLE_CLOSE_REASON}})
        self.closed = True
        await self.socket.close(IDLE_CLOSE_CODE, IDLE_CLOSE_REASON)

    async def handle(self, raw: str, call: tb.CallInput) -> None:
        """One client message: audio, a control, or an error reply."""
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError:
            await self.send(error_message("Messages must be JSON objects", "invalid_json"))
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            await self.send(error_message("Messages need a string 'type'", "invalid_message"))
            return
        kind = msg["type"]
        if kind == "audio_chunk":
            pcm = self.decode_audio(msg)
            if isinstance(pcm, dict):
                await self.send(pcm)
            else:
                call.push_audio(pcm)
            return
        parse = _CONTROLS.get(kind)
        if parse is None:
            await self.send(error_message(f"Unknown message type {kind!r}",
                                          "unknown_message_type"))
            return
        command = parse(msg)
        if isinstance(command, dict):
            await self.send(command)
            return
        try:
            await call.control(command)
        except tb.ControlRejected as exc:
            await self.send(error_message(exc.message, exc.code, exc.param_errors))

    def decode_audio(self, msg: dict[str, Any]) -> bytes | dict[str, Any]:
        data = msg.get("audio")
        if not isinstance(data, str):
            return error_message("audio_chunk needs base64 'audio'", "invalid_audio",
                                 {"audio": "required base64 string"})
        try:
            pcm = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return error_message("audio is not valid base64", "invalid_audio",
                                 {"audio": "invalid base64"})
        if len(pcm) > self.max_chunk_bytes:
            name = self.fmt.name if self.fmt else "the input format"
            return error_message(
                f"audio chunks may hold at most {MAX_CHUNK_MS} ms "
                f"({self.max_chunk_bytes} bytes of {name}); got {len(pcm)} bytes",
                "audio_chunk_too_large", {"audio": f"at most {MAX_CHUNK_MS} ms per chunk"})
        return pcm


# ----- Phonic control messages -> typed controls -----------------------------------------

Parsed = tb.Control | dict[str, Any]


def _text_field(m: dict[str, Any], key: str) -> str | None:
    value = m.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _missing(key: str) -> dict[str, Any]:
    return error_message(f"'{key}' is required", "invalid_message", {key: "required"})


def _required(key: str, build: Callable[[str], tb.Control]) -> Callable[[dict[str, Any]], Parsed]:
    def parse(m: dict[str, Any]) -> Parsed:
        text = _text_field(m, key)
        return _missing(key) if text is None else build(text)
    return parse


def _reset(m: dict[str, Any]) -> Parsed:
    config = m.get("config")
    if not isinstance(config, dict):
        return _missing("config")
    prompt = config.get("system_prompt")
    return tb.Reset(prompt if isinstance(prompt, str) else None)


def _tool_output(m: dict[str, Any]) -> Parsed:
    call_id = m.get("tool_call_id")
    if not isinstance(call_id, str):
        return _missing("tool_call_id")
    return tb.ToolCallOutput(call_id, m.get("output"))


def _tools_subset(m: dict[str, Any]) -> Parsed:
    tools = m.get("tools")
    return tb.UpdateTools(tools) if isinstance(tools, list) else _missing("tools")


def _say(m: dict[str, Any]) -> Parsed:
    text = _text_field(m, "text")
    return _missing("text") if text is None else tb.Say(text, m.get("interruptible") is not False)


def _config_again(m: dict[str, Any]) -> Parsed:
    return error_message("The conversation is already configured; use 'reset'",
                         "already_configured")


_CONTROLS: dict[str, Callable[[dict[str, Any]], Parsed]] = {
    "update_system_prompt": _required("system_prompt", tb.UpdateSystemPrompt),
    "add_system_message": _required("system_message", tb.AddSystemMessage),
    "set_external_id": _required("external_id", lambda v: tb.SetExternalId(v.strip())),
    "generate_reply": lambda m: tb.GenerateReply(_text_field(m, "system_message"),
                                                 _text_field(m, "user_message")),
    "say": _say,
    "mute": lambda m: tb.Mute(),
    "unmute": lambda m: tb.Unmute(),
    "config": _config_again,
    "reset": _reset,
    "tool_call_output": _tool_output,
    "update_tools_subset": _tools_subset,
}
