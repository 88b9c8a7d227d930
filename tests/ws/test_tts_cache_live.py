"""The TTS cache in live calls: a welcome message is synthesised for the project's first
call only; the calls' engine tasks run in their project's cache scope."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from openline.providers.testing import FakeTTS
from openline.providers.tts.cache import CachedTTS
from tests.conftest import fake_providers, start_server
from tests.ws.conftest import collect, config, sdk

WELCOME = "Thanks for calling Bella's."


async def test_a_welcome_spoken_on_every_call_is_synthesised_once(tmp_path: Path) -> None:
    inner = FakeTTS(ms_per_char=20)
    providers = replace(fake_providers(), tts=CachedTTS(inner, max_bytes=1 << 20))
    server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}", tmp_path, providers)
    try:
        client = sdk(server)
        await client.agents.create(name="desk", welcome_message=WELCOME)
        heard: list[str] = []
        for _ in range(3):
            seen: list[Any] = []
            async with client.conversations.connect() as socket:
                await socket.send_config(config(agent="desk", stream_ahead_of_real_time=True))
                await collect(socket, "assistant_finished_speaking", seen)
            heard.append(" ".join(m.text for m in seen
                                  if getattr(m, "type", "") == "audio_chunk" and m.text))
    finally:
        server.stop()
    assert heard == [WELCOME] * 3  # every call heard it, whole
    assert [text for text, _, _ in inner.requests] == [WELCOME]  # the voice spoke it once
    assert providers.tts.metrics.op("cache_hit").calls == 2
