"""A real local HTTP server standing in for a customer's Vapi server URL, a Vapi SDK client,
and a ``vapi.websocket`` call client over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import LiveServer, free_port
from vapi import AsyncVapi

Answer = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    message: dict[str, Any]


@dataclass
class ServerUrl:
    """Receives server-URL messages, records them with their headers, and answers by
    message type (``answers``; ``{}`` otherwise). ``fail_next[type]``: answer 503 that
    many times first (to see retries)."""

    answers: dict[str, Answer] = field(default_factory=dict)
    fail_next: dict[str, int] = field(default_factory=dict)
    #: answer messages of this type only after so many seconds
    delay_s: dict[str, float] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _server: uvicorn.Server | None = None

    async def _handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        body = json.loads(raw)
        # a plain request (an apiRequest tool) is kept as the pseudo-type "http"
        message = body.get("message", {"type": "http", "body": body})
        kind = message["type"]
        self.received.append(Received(request.url.path, dict(request.headers), raw, message))
        if self.fail_next.get(kind):
            self.fail_next[kind] -= 1
            return JSONResponse({"error": "try again"}, status_code=503)
        if self.delay_s.get(kind):
            await asyncio.sleep(self.delay_s[kind])
        answer = self.answers.get(kind)
        return JSONResponse(answer(message) if answer else {})

    def start(self) -> ServerUrl:
        port = free_port()
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                     log_level="warning"))
        threading.Thread(target=self._server.run, daemon=True).start()
        while not self._server.started:
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    def of(self, kind: str, path: str | None = None) -> list[Received]:
        return [r for r in self.received if r.message["type"] == kind
                and (path is None or r.path == path)]

    async def wait_for(self, kind: str, within: float = 15.0,
                       where: Callable[[dict[str, Any]], bool] = lambda m: True) -> Received:
        async with asyncio.timeout(within):
            while True:
                found = [r for r in self.of(kind) if where(r.message)]
                if found:
                    return found[-1]
                await asyncio.sleep(0.05)


@pytest.fixture
def server_url() -> Iterator[ServerUrl]:
    hook = ServerUrl().start()
    yield hook
    hook.stop()


def sdk(server: LiveServer) -> AsyncVapi:
    """The official SDK pointed at Openline (``base_url``), as users configure it."""
    return AsyncVapi(token=server.api_key, base_url=server.url)


def tone_pcm16(ms: int, rate: int = 16000, freq: float = 300.0) -> bytes:
    """Caller "speech" for the energy VAD: a tone, PCM16."""
    t = np.arange(int(rate * ms / 1000)) / rate
    return (np.sin(2 * np.pi * freq * t) * 9000).astype("<i2").tobytes()


class CallSocket:
    """The client end of a ``vapi.websocketCall``: audio out in 20 ms frames, what the
    server sends kept (binary audio, JSON messages)."""

    def __init__(self, ws: websockets.ClientConnection, rate: int = 16000) -> None:
        self.ws, self.rate = ws, rate
        self.audio = bytearray()
        self.messages: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self.audio.extend(frame)
                else:
                    self.messages.append(json.loads(frame))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def send_audio(self, pcm: bytes, realtime: bool = True) -> None:
        step = self.rate // 50 * 2
        for i in range(0, len(pcm), step):
            await self.ws.send(pcm[i:i + step])
            if realtime:
                await asyncio.sleep(0.02)

    async def silence(self, ms: int) -> None:
        await self.send_audio(b"\x00\x00" * (self.rate * ms // 1000))

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def wait_audio(self, min_bytes: int, within: float = 15.0) -> None:
        async with asyncio.timeout(within):
            while True:
                if len(self.audio) >= min_bytes:
                    return
                await asyncio.sleep(0.05)

    async def wait_message(self, kind: str, within: float = 15.0,
                           where: Callable[[dict[str, Any]], bool] = lambda m: True
                           ) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                found = [m for m in self.of(kind) if where(m)]
                if found:
                    return found[-1]
                await asyncio.sleep(0.05)


@pytest.fixture
async def dial() -> AsyncIterator[Callable[[str], Any]]:
    """``await dial(websocketCallUrl)``: a connected ``CallSocket``."""
    sockets: list[CallSocket] = []

    async def connect(url: str, rate: int = 16000) -> CallSocket:
        socket = CallSocket(await websockets.connect(url, max_size=None), rate)
        sockets.append(socket)
        return socket

    yield connect
    for socket in sockets:
        await socket.ws.close()
