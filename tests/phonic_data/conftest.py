"""Live servers for the data features of the complete Phonic dialect: an LLM whose answer
depends on the system prompt (so a changed prompt changes the replayed turns), a scripted
recogniser, and helpers for one real conversation over the official SDK's socket."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from phonic import AsyncPhonic

from openline.providers.llm.base import ChatMessage, GenerationOptions, ToolCall, ToolSpec
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM, ScriptedReply
from openline.voice.session import Providers
from tests.conftest import PG_ADMIN_DSN, LiveServer, start_server
from tests.ws.conftest import collect, config, sdk, send_pcm, silence, tone

ServerFactory = Callable[..., LiveServer]
#: SDK calls that must fail fast (409, 429 and 5xx are retried twice by default)
NO_RETRY: Any = {"max_retries": 0}


def error_of(exc: Any) -> dict[str, Any]:
    """The ``error`` object of an SDK exception (a dict, or the typed BasicError model)."""
    body = exc.body
    if hasattr(body, "dict"):
        body = body.dict()
    return dict(body["error"])


class PromptLLM(ScriptedLLM):
    """Answers after the system prompt's first sentence: ``"As <it>, I can help."``; a
    prompt containing ``USE lookup_booking`` makes it call that tool as well."""

    async def _stream(self, messages: list[ChatMessage], tools: list[ToolSpec],
                      options: GenerationOptions) -> AsyncIterator[Any]:
        system = messages[0].content if messages and messages[0].role == "system" else ""
        persona = system.split(".")[0].strip()
        calls: tuple[ToolCall, ...] = ()
        if "USE lookup_booking" in system and any(t.name == "lookup_booking" for t in tools):
            calls = (ToolCall("call_1", "lookup_booking", '{"name": "Dana"}'),)
        self.replies.insert(0, ScriptedReply(f"As {persona}, I can help.", calls))
        async for event in super()._stream(messages, tools, options):
            yield event


def providers(stt_text: str = "I need a table for two") -> Providers:
    return Providers(EnergyVAD(), FakeSTT(default=stt_text), PromptLLM(),
                     FakeTTS(ms_per_char=20))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: a SQLite file, or a new PostgreSQL database (tests of
    scheduled deletion must not see other tests' conversations). Request it before
    ``make_server``, so that the servers stop before the database is dropped."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data.db'}"
        return
    name = "openline_pd_" + uuid.uuid4().hex[:12]
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    servers: list[LiveServer] = []

    def make(url: str | None = None, stt_text: str = "I need a table for two",
             **settings: Any) -> LiveServer:
        chosen = providers(stt_text)
        server = start_server(url or f"sqlite+aiosqlite:///{tmp_path / 'data.db'}",
                              tmp_path / f"data-{len(servers)}", chosen, **settings)
        server.llm = chosen.llm  # type: ignore[attr-defined]  # what the LLM was asked
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


async def one_turn(client: AsyncPhonic, agent: str, *, speech_ms: int = 700,
                   keep_open: Callable[[str], Any] | None = None,
                   connect_options: Any = None, rest: AsyncPhonic | None = None) -> str:
    """A conversation over the SDK socket: the caller speaks once, the agent answers,
    the caller hangs up. ``keep_open(conversation_id)`` runs before the hang-up;
    ``rest`` reads the result when ``client`` holds no API key."""
    seen: list[Any] = []
    async with client.conversations.connect(request_options=connect_options) as socket:
        await socket.send_config(config(agent=agent))
        await collect(socket, "ready_to_start_conversation", seen)
        await send_pcm(socket, tone(speech_ms))
        await send_pcm(socket, silence(1000))
        await collect(socket, "assistant_finished_speaking", seen)
        conversation_id = next(m.conversation_id for m in seen
                               if getattr(m, "type", None) == "conversation_created")
        if keep_open is not None:
            await keep_open(conversation_id)
    await wait_ended(rest or client, conversation_id)
    return str(conversation_id)


async def wait_ended(client: AsyncPhonic, conversation_id: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        conversation = (await client.conversations.get(conversation_id)).conversation
        if conversation.ended_at is not None:
            return conversation
        await asyncio.sleep(0.1)
    raise AssertionError(f"conversation {conversation_id} did not end")


__all__ = [
    "NO_RETRY",
    "PromptLLM",
    "ServerFactory",
    "backend",
    "error_of",
    "make_server",
    "one_turn",
    "providers",
    "sdk",
    "wait_ended",
]
