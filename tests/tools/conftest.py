"""Real local HTTP servers (webhook targets, configuration endpoints) and a scripted LLM."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from phonic import AsyncPhonic, PhonicEnvironment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from openline.providers.llm.openai_compat import OpenAICompatLLM, OpenAICompatOptions
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS
from openline.voice.session import Providers
from tests.conftest import LiveServer, free_port, start_server
from tests.support.llm_server import ScriptedLLMServer


@dataclass
class Target:
    """A customer's server: records every request; routes reply as scripted."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    config_reply: Any = field(default_factory=dict)
    config_status: int = 200
    config_delay_s: float = 0.0

    async def _record(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        entry = {"method": request.method, "path": request.url.path,
                 "raw_path": request.scope["raw_path"].decode(),
                 "query": dict(request.query_params), "headers": dict(request.headers),
                 "body": body.decode() if body else None, "at": time.monotonic()}
        self.requests.append(entry)
        return entry

    async def order(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"order": request.path_params["order_id"], "status": "shipped"})

    async def slow(self, request: Request) -> Response:
        await self._record(request)
        await asyncio.sleep(3)
        return JSONResponse({"late": True})

    async def fail(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"error": "boom"}, status_code=500)

    async def text(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("not json at all")

    async def config(self, request: Request) -> Response:
        await self._record(request)
        await asyncio.sleep(self.config_delay_s)
        if isinstance(self.config_reply, str):
            return PlainTextResponse(self.config_reply, status_code=self.config_status)
        return JSONResponse(self.config_reply, status_code=self.config_status)

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    app = Starlette(routes=[
        Route("/orders/{order_id}", t.order, methods=["GET", "POST"]),
        Route("/slow/{order_id}", t.slow, methods=["GET", "POST"]),
        Route("/fail/{order_id}", t.fail, methods=["GET", "POST"]),
        Route("/text/{order_id}", t.text, methods=["GET", "POST"]),
        Route("/config", t.config, methods=["POST"]),
    ])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    t.base_url = f"http://127.0.0.1:{port}"
    yield t
    server.should_exit = True


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    server = ScriptedLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def openline(llm: ScriptedLLMServer, tmp_path: Path) -> Iterator[LiveServer]:
    providers = Providers(EnergyVAD(), FakeSTT(default="hello"),
                          OpenAICompatLLM(OpenAICompatOptions(base_url=llm.base_url, model="m",
                                                              max_retries=0)),
                          FakeTTS(ms_per_char=10))
    server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'tools.db'}", tmp_path, providers)
    yield server
    server.stop()


def client_for(server: LiveServer) -> AsyncPhonic:
    return AsyncPhonic(api_key=server.api_key, environment=PhonicEnvironment(
        base=f"{server.url}/v1", production=server.ws_url))
