"""``/v1/sts/ws``: authenticate, read ``config``, then bridge socket <-> engine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import PlainTextResponse
from starlette.websockets import WebSocketDisconnect

from openline.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OpenlineError,
    Unauthorized,
    ValidationFailed,
)
from openline.services.hub import Services
from openline.services.live import ConfigurationFailed
from openline.services.principal import Principal
from openline.transports.sts import (
    CLOSE_CODES,
    RECONNECT_GRACE_S,
    Disconnected,
    Hooks,
    StsBridge,
    error_message,
)
from openline.voice import events as ev

log = logging.getLogger(__name__)
router = APIRouter()
CONFIG_WAIT_S = 30
DROP_NOTICE_S = 1.0


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


def _credential(ws: WebSocket) -> str | None:
    header = ws.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for key in ("session_token", "conversation_token"):
        if ws.query_params.get(key):
            return ws.query_params[key]
    return None


@router.websocket("/sts/ws")
async def sts(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    try:
        who = await services.auth.authenticate(_credential(ws))
    except Unauthorized:
        await ws.send_denial_response(PlainTextResponse(
            "Websocket initialized with invalid credentials.", status_code=401))
        return
    if who.kind == "session_token" and who.conversation_ids:
        await ws.send_denial_response(PlainTextResponse(
            "This session token cannot open conversations.", status_code=403))
        return
    await ws.accept()
    socket = StarletteSocket(ws)
    resume = ws.query_params.get("reconnect_conv_id")
    if resume:
        await _resume(services, _waiting(ws), who, socket, resume)
        return
    config = await _read_config(socket)
    if config is None:
        return
    await _serve(services, who, socket, config, _origin(ws), _waiting(ws))


async def _read_config(socket: StarletteSocket) -> dict[str, Any] | None:
    """Wait for ``config``; anything earlier gets an error and is ignored."""
    try:
        async with asyncio.timeout(CONFIG_WAIT_S):
            while True:
                raw = await socket.receive_text()
                try:
                    msg = json.loads(raw)
                except json.JSONDecodeError:
                    msg = None
                if isinstance(msg, dict) and msg.get("type") == "config":
                    return msg
                await socket.send_text(json.dumps(error_message(
                    "Send a 'config' message first", "config_required")))
    except (Disconnected, TimeoutError):
        await socket.close(1008, "no config")
        return None


def _origin(ws: WebSocket) -> str:
    """Phonic's ``origin``: which client opened the conversation (Fern SDK headers)."""
    language = ws.headers.get("x-fern-language", "").lower()
    if language == "python":
        return "sdk-py"
    if language in ("javascript", "typescript", "node"):
        return "sdk-js"
    return "direct"


Waiting = dict[str, tuple[str, "asyncio.Future[StarletteSocket]"]]


def _waiting(ws: WebSocket) -> Waiting:
    """Conversations whose client dropped, waiting for it to come back (per process)."""
    app = ws.app
    if not hasattr(app.state, "sts_waiting"):
        app.state.sts_waiting = {}
    waiting: Waiting = app.state.sts_waiting
    return waiting


async def _resume(services: Services, waiting: Waiting, who: Principal,
                  socket: StarletteSocket, conversation_id: str) -> None:
    """``?reconnect_conv_id=``: hand this socket to the conversation that lost its client."""
    entry = waiting.get(conversation_id)
    if entry is None and conversation_id in services.live.live:
        # The new socket can arrive before the server has noticed the old one drop.
        await asyncio.sleep(DROP_NOTICE_S)
        entry = waiting.get(conversation_id)
    live = services.live.live.get(conversation_id)
    if entry is None or live is None or entry[0] != who.workspace_id or entry[1].done():
        await socket.close(4800, "reconnect session not found or expired")
        return
    entry[1].set_result(socket)
    await live.finished.wait()  # the conversation's own handler closes the socket


async def _serve(services: Services, who: Principal, socket: StarletteSocket,
                 config: dict[str, Any], origin: str, waiting: Waiting) -> None:
    holder: dict[str, StsBridge] = {}

    async def send(event: ev.EngineEvent) -> None:
        await holder["bridge"].send_event(event)

    try:
        live = await services.live.start(who, config, send, origin=origin)
    except OpenlineError as exc:
        await _refuse(socket, exc)
        return
    async def wait_for_client() -> StarletteSocket | None:
        future: asyncio.Future[StarletteSocket] = asyncio.get_running_loop().create_future()
        waiting[live.id] = (who.workspace_id, future)
        try:
            async with asyncio.timeout(RECONNECT_GRACE_S):
                return await future
        except TimeoutError:
            return None
        finally:
            waiting.pop(live.id, None)

    bridge = StsBridge(socket, live.resolved.session.input_format, wait_for_client)
    holder["bridge"] = bridge
    await bridge.send({"type": "conversation_created", "conversation_id": live.id})
    await bridge.send({"type": "ready_to_start_conversation"})
    for warning in live.resolved.warnings:
        await bridge.send({"type": "warning", "warning": {"message": warning,
                                                          "code": "voice_not_found"}})
    hooks = Hooks(set_external_id=lambda ext: services.live.set_external_id(live.id, ext),
                  load_tools=lambda defs: services.live.load_tools(live.id, defs))
    receiver = asyncio.create_task(bridge.receive_loop(live.engine, hooks), name="sts-recv")
    try:
        result = await services.live.run(live)
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
    if not bridge.closed:
        code = CLOSE_CODES.get(result.ended_by, 1000)
        await bridge.socket.close(code, result.ended_by)


async def _refuse(socket: StarletteSocket, exc: OpenlineError) -> None:
    params = exc.param_errors if isinstance(exc, ValidationFailed) else None
    code = {NotFound: "agent_not_found", Forbidden: "forbidden",
            Conflict: "concurrency_limit_reached"}.get(type(exc), exc.code)
    if isinstance(exc, ValidationFailed):
        code = "invalid_config"
    if isinstance(exc, ConfigurationFailed):
        code = exc.ended_by
    with contextlib.suppress(Disconnected):
        await socket.send_text(json.dumps(error_message(exc.message, code, params)))
    close_code = 4010 if isinstance(exc, Conflict) else (
        1011 if isinstance(exc, ConfigurationFailed) else 1008)
    await socket.close(close_code, code or "refused")

