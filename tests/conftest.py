"""Shared fixtures: live Openline servers on SQLite and on the machine's PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from openline.boot.server import create_app
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM
from openline.settings import Settings
from openline.voice.session import Providers

PG_ADMIN_DSN = os.environ.get("OPENLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TEST_KEY = "ol_test_" + uuid.uuid4().hex
#: Servers that share a database (the session's PostgreSQL) need the key that sealed it.
TEST_SECRET_KEY = "test-secret-" + uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A real Openline HTTP server running in a background thread."""

    url: str
    api_key: str
    database_url: str
    data_dir: Path
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def fake_providers(llm: ScriptedLLM | None = None, stt: FakeSTT | None = None) -> Providers:
    """Deterministic providers: energy VAD, scripted STT and LLM, tone TTS (voices joe, ava)."""
    return Providers(EnergyVAD(), stt or FakeSTT(default="hello"), llm or ScriptedLLM(),
                     FakeTTS(ms_per_char=20))


def share_secret_key(data_dir: Path) -> None:
    """Servers that share a database (the session's PostgreSQL) need the key that sealed its
    secrets: each test server's data directory gets the session's key, unless it has one
    already, so a worker or the CLI run on that directory uses the same key."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(data_dir / "secret_key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(TEST_SECRET_KEY)


def start_server(database_url: str, data_dir: Path, providers: Providers | None = None,
                 **overrides: Any) -> LiveServer:
    """A live server; tests reach local webhook targets (``allow_private_urls``) by default,
    and every server seals secrets with the session's key (``share_secret_key``)."""
    port = free_port()
    options: dict[str, Any] = {"allow_private_urls": True, **overrides}
    share_secret_key(data_dir)
    settings = Settings(data_dir=data_dir, database_url=database_url, api_key=TEST_KEY,
                        host="127.0.0.1", port=port, **options)
    app = create_app(settings, providers or fake_providers(), announce_key=False, verbose=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            ws_per_message_deflate=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"openline-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("Openline test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", TEST_KEY, database_url, data_dir, server, thread)


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = "openline_test_" + uuid.uuid4().hex[:12]
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server per storage backend; every API test runs against both."""
    data_dir = tmp_path_factory.mktemp(f"openline-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{data_dir / 'openline.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    server = start_server(url, data_dir)
    yield server
    server.stop()
