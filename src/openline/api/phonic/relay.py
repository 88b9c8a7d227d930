"""Reconnect hand-off between nodes: relay a returning socket to the node running its call.

A dropped Phonic socket reconnects with ``reconnect_conv_id``; the balancer may send it to
any node. The call can only take its peer on the node that runs it, so another node
opens the same request to that node (its address from the live registry) and relays
frames both ways until either side closes, passing the close code on. The owner checks
the credential again; nothing is decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

#: a relay that cannot reach the owner within this long gives up (the caller gets 4801)
CONNECT_TIMEOUT_S = 5.0


async def relay(ws: WebSocket, owner_url: str) -> bool:
    """Relay the accepted socket ``ws`` to ``owner_url``; False if the owner is unreachable."""
    base = urlsplit(owner_url)
    scheme = "wss" if base.scheme == "https" else "ws"
    target = f"{scheme}://{base.netloc}{ws.url.path}?{ws.url.query}"
    headers = {k: v for k, v in ws.headers.items() if k.lower() == "authorization"}
    try:
        upstream = await connect(target, additional_headers=headers, max_size=None,
                                 open_timeout=CONNECT_TIMEOUT_S, compression=None)
    except (OSError, InvalidHandshake, TimeoutError):
        return False
    async with upstream:
        tasks = {asyncio.create_task(_down(upstream, ws)), asyncio.create_task(_up(ws, upstream))}
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        code, reason = upstream.close_code or 1000, upstream.close_reason or ""
    with contextlib.suppress(Exception):
        await ws.close(code if code != 1006 else 1011, reason)
    return True


async def _down(upstream: ClientConnection, ws: WebSocket) -> None:
    """Owner -> caller."""
    with contextlib.suppress(ConnectionClosed, WebSocketDisconnect, RuntimeError):
        async for message in upstream:
            if isinstance(message, str):
                await ws.send_text(message)
            else:
                await ws.send_bytes(message)


async def _up(ws: WebSocket, upstream: ClientConnection) -> None:
    """Caller -> owner; the caller going away closes the owner side (the call waits)."""
    with contextlib.suppress(ConnectionClosed, WebSocketDisconnect, RuntimeError):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])
    with contextlib.suppress(Exception):
        await upstream.close()
