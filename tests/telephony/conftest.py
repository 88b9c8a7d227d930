"""A fake Twilio and Openline servers configured to use it, with scripted providers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from phonic import AsyncPhonic, PhonicEnvironment

from openline.audio.codecs import WIRE_FORMATS
from openline.providers.testing import FakeSTT, ScriptedLLM, ScriptedReply
from tests.conftest import LiveServer, fake_providers, start_server
from tests.telephony.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

AGENT_NUMBER = "+15550001000"
CALLER = "+15557770101"
MULAW = WIRE_FORMATS["mulaw_8000"]
PhoneServer = Callable[..., LiveServer]


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def phone_server(tmp_path: Path, fake_twilio: FakeTwilio) -> Iterator[PhoneServer]:
    """``make(replies, texts, **settings)``: a server whose Twilio is the fake."""
    servers: list[LiveServer] = []

    def make(replies: list[ScriptedReply | str] | None = None, texts: list[str] | None = None,
             *, llm: dict[str, Any] | None = None, **settings: Any) -> LiveServer:
        providers = fake_providers(ScriptedLLM(replies or [], **(llm or {})),
                                   FakeSTT(texts or [], default="hello"))
        server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'phone.db'}", tmp_path,
                              providers, twilio_account_sid=ACCOUNT_SID,
                              twilio_auth_token=AUTH_TOKEN, twilio_api_base=fake_twilio.url,
                              **settings)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def sdk(server: LiveServer) -> AsyncPhonic:
    return AsyncPhonic(api_key=server.api_key, environment=PhonicEnvironment(
        base=f"{server.url}/v1", production=server.ws_url))


async def phone_agent(server: LiveServer, name: str = "front-desk",
                      number: str = AGENT_NUMBER, **fields: Any) -> AsyncPhonic:
    """An agent answering ``number`` (a custom number without SIP details: Twilio's)."""
    client = sdk(server)
    await client.agents.create(name=name, phone_number="custom", custom_phone_numbers=[number],
                               voice_id="joe", **fields)
    return client


def tone_mulaw(ms: int, freq: float = 300.0) -> bytes:
    """Caller "speech" for the energy VAD: a tone as 8 kHz μ-law."""
    t = np.arange(int(8000 * ms / 1000)) / 8000
    return MULAW.encode((np.sin(2 * np.pi * freq * t) * 9000).astype(np.int16))


def voice_url(server: LiveServer) -> str:
    return f"{server.url}/twilio/voice"


async def conversation(client: AsyncPhonic, conversation_id: str, *, ended: bool = True,
                       within: float = 15.0) -> Any:
    """The stored conversation (once it has ended, by default)."""
    import asyncio

    async with asyncio.timeout(within):
        while True:
            conv = (await client.conversations.get(conversation_id)).conversation
            if not ended or conv.ended_at is not None:
                return conv
            await asyncio.sleep(0.1)
