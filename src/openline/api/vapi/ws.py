"""The socket of a ``vapi.websocketCall``: ``/call/{id}/transport/{token}`` (the
``transport.websocketCallUrl`` ``POST /call`` returned; the token is the credential)."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket
from fastapi.responses import PlainTextResponse
from starlette.websockets import WebSocketDisconnect

from openline.services.hub import Services
from openline.transports.vapi_ws import SocketClosed

router = APIRouter()


class StarletteBinarySocket:
    """``BinarySocket`` over Starlette's WebSocket."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def receive(self) -> str | bytes:
        try:
            message = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise SocketClosed() from exc
        if message["type"] == "websocket.disconnect":
            raise SocketClosed()
        if message.get("bytes") is not None:
            return bytes(message["bytes"])
        return str(message.get("text") or "")

    async def send_text(self, data: str) -> None:
        try:
            await self.ws.send_text(data)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise SocketClosed() from exc

    async def send_bytes(self, data: bytes) -> None:
        try:
            await self.ws.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise SocketClosed() from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)


@router.websocket("/call/{call_id}/transport/{token}")
async def call_socket(ws: WebSocket, call_id: str, token: str) -> None:
    services: Services = ws.app.state.services
    calls = services.vapi_calls
    if calls is None or not calls.token_valid(call_id, token):
        await ws.send_denial_response(PlainTextResponse("Unknown call", status_code=404))
        return
    await ws.accept()
    socket = StarletteBinarySocket(ws)
    if not await calls.serve_socket(call_id, socket):
        await socket.close(4404, "the call is not waiting for its socket")
