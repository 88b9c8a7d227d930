"""``/v1/sts/ws``: authenticate, read ``config``, hand the socket to a call session."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import PlainTextResponse
from starlette.websockets import WebSocketDisconnect

from openline.api.phonic import scopes
from openline.api.phonic.sts_config import start_call
from openline.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OpenlineError,
    Unauthorized,
    ValidationFailed,
)
from openline.services.call_setup import ConfigurationFailed
from openline.services.hub import Services
from openline.services.live import CallOpened
from openline.transports.sts import Disconnected, StsTransport, error_message

router = APIRouter()
CONFIG_WAIT_S = 30


class StarletteSocket:
    """``WireSocket`` over Starlette's WebSocket."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def receive_text(self) -> str:
        try:
            message = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise Disconnected() from exc
        if message["type"] == "websocket.disconnect":
            raise Disconnected(message.get("code"), message.get("reason") or "")
        if message.get("text") is not None:
            return str(message["text"])
        data = message.get("bytes") or b""
        return data.decode("utf-8", errors="replace")

    async def send_text(self, data: str) -> None:
        try:
            await self.ws.send_text(data)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise Disconnected() from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)


def _credential(ws: WebSocket) -> tuple[str | None, bool]:
    """The credential, and whether it came in the query string (logged by proxies)."""
    header = ws.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    for key in ("session_token", "conversation_token"):
        if ws.query_params.get(key):
            return ws.query_params[key], True
    return None, False


def _origin(ws: WebSocket) -> str:
    """Phonic's ``origin``: which client opened the conversation (Fern SDK headers)."""
    language = ws.headers.get("x-fern-language", "").lower()
    if language == "python":
        return "sdk-py"
    if language in ("javascript", "typescript", "node"):
        return "sdk-js"
    return "direct"


@router.websocket("/sts/ws")
async def sts(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    credential, in_query = _credential(ws)
    token = ws.query_params.get("jwt")
    try:
        who = await (services.socket_jwt.authenticate(token) if token and services.socket_jwt
                     else services.auth.authenticate(credential))
    except Unauthorized:
        await ws.send_denial_response(PlainTextResponse(
            "Websocket initialized with invalid credentials.", status_code=401))
        return
    refusal = scopes.socket_refusal(who, in_query)
    if refusal is not None:
        await ws.send_denial_response(PlainTextResponse(refusal, status_code=403))
        return
    await ws.accept()
    transport = StsTransport(StarletteSocket(ws))
    resume = ws.query_params.get("reconnect_conv_id")
    if token and who.conversation_ids and not resume:  # a JWT naming its conversation
        await transport.socket.close(1008, "this token can only resume its conversation")
        return
    if resume:
        if not (await scopes.may_resume(services, who, resume)
                and await services.live.resume(who, resume, transport)):
            await transport.socket.close(4800, "reconnect session not found or expired")
        return
    config = await _read_config(transport)
    if config is None:
        return

    async def opened(call: CallOpened) -> None:
        transport.configure(call.input_format)
        await transport.send({"type": "conversation_created",
                              "conversation_id": call.conversation_id})
        await transport.send({"type": "ready_to_start_conversation"})
        for warning in call.warnings:
            await transport.send({"type": "warning",
                                  "warning": {"message": warning, "code": "voice_not_found"}})

    try:
        start = start_call(who, config, _origin(ws))
        await services.live.run_call(start, transport, opened)
    except OpenlineError as exc:
        await _refuse(transport, exc)


async def _read_config(transport: StsTransport) -> dict[str, Any] | None:
    """Wait for ``config``; anything earlier gets an error and is ignored."""
    try:
        async with asyncio.timeout(CONFIG_WAIT_S):
            while True:
                raw = await transport.socket.receive_text()
                try:
                    msg = json.loads(raw)
                except json.JSONDecodeError:
                    msg = None
                if isinstance(msg, dict) and msg.get("type") == "config":
                    return msg
                await transport.send(error_message("Send a 'config' message first",
                                                   "config_required"))
    except (Disconnected, TimeoutError):
        await transport.socket.close(1008, "no config")
        return None


async def _refuse(transport: StsTransport, exc: OpenlineError) -> None:
    """A conversation that may not start: Phonic's error message, then the close code."""
    params = exc.param_errors if isinstance(exc, ValidationFailed) else None
    code = {NotFound: "agent_not_found", Forbidden: "forbidden",
            Conflict: "concurrency_limit_reached"}.get(type(exc), exc.code)
    if isinstance(exc, ValidationFailed):
        code = "invalid_config"
    if isinstance(exc, ConfigurationFailed):
        code = exc.ended_by
    await transport.send(error_message(exc.message, code, params))
    close_code = 4010 if isinstance(exc, Conflict) else (
        1011 if isinstance(exc, ConfigurationFailed) else 1008)
    await transport.socket.close(close_code, code or "refused")
