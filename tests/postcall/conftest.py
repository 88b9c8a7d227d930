"""Post-call fixtures: a scripted OpenAI-compatible LLM, a signature-checking webhook
receiver that can be told to fail, and live servers wired to both."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from openline.postcall import signing
from openline.providers.llm.openai_compat import OpenAICompatLLM, OpenAICompatOptions
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS
from openline.voice.session import Providers
from tests.conftest import LiveServer, free_port, start_server
from tests.support.llm_server import ScriptedLLMServer

#: fast retries and polling for every server these tests start
FAST_JOBS = {"OPENLINE_JOB_RETRY_BASE_S": "0.05", "OPENLINE_JOB_POLL_S": "0.1",
             "OPENLINE_ALLOW_PRIVATE_URLS": "1"}


@dataclass
class Delivery:
    message_id: str
    timestamp: int
    body: str
    valid: bool
    status: int


@dataclass
class WebhookReceiver:
    """A real HTTP receiver. ``secret`` verifies signatures; ``fail_next`` answers that
    many requests with 500 first; ``delay_s`` slows every answer."""

    secret: str = ""
    fail_next: int = 0
    delay_s: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""
    _server: uvicorn.Server | None = None

    async def _hook(self, request: Request) -> Response:
        body = (await request.body()).decode()
        h = request.headers
        message_id, timestamp = h.get("webhook-id", ""), int(h.get("webhook-timestamp", "0"))
        valid = bool(self.secret) and signing.verify(
            self.secret, message_id, timestamp, body, h.get("webhook-signature", ""))
        valid = valid and h.get("svix-signature") == h.get("webhook-signature")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = 500 if self.fail_next > 0 else (200 if valid else 401)
        self.fail_next = max(0, self.fail_next - 1)
        self.deliveries.append(Delivery(message_id, timestamp, body, valid, status))
        return JSONResponse({"ok": status == 200}, status_code=status)

    def ok(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.status == 200]

    def start(self) -> WebhookReceiver:
        port = free_port()
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                     log_level="warning"))
        threading.Thread(target=self._server.run, daemon=True).start()
        while not self._server.started:
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True


def wait_until(check: Callable[[], Any], within: float = 15.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def llm_server() -> Iterator[ScriptedLLMServer]:
    server = ScriptedLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


def scripted_providers(llm_server: ScriptedLLMServer, stt: FakeSTT | None = None) -> Providers:
    llm = OpenAICompatLLM(OpenAICompatOptions(base_url=llm_server.base_url, model="m",
                                              max_retries=0))
    return Providers(EnergyVAD(), stt or FakeSTT(default="hello"), llm, FakeTTS(ms_per_char=20))


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def make_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerFactory]:
    """Start servers on one fresh SQLite database (several = restarts of one install)."""
    for key, value in FAST_JOBS.items():
        monkeypatch.setenv(key, value)
    servers: list[LiveServer] = []
    url = f"sqlite+aiosqlite:///{tmp_path / 'postcall.db'}"

    def make(providers: Providers, **env: str) -> LiveServer:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        server = start_server(url, tmp_path, providers)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
