"""Drive one conversation over the SDK with text turns (``generate_reply``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from phonic import AsyncPhonic
from phonic.types import ConfigPayload, GenerateReplyPayload

from tests.conftest import LiveServer

END_TYPES = ("assistant_finished_speaking", "assistant_chose_not_to_respond")


class Talk:
    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.seen: list[Any] = []
        self.conversation_id: str | None = None

    async def until(self, *types: str, within: float = 15.0) -> Any:
        async with asyncio.timeout(within):
            async for message in self.socket:
                self.seen.append(message)
                kind = getattr(message, "type", None)
                if kind == "conversation_created":
                    self.conversation_id = message.conversation_id
                if kind in types:
                    return message
        raise AssertionError(f"socket closed before {types}")

    async def say_as_user(self, text: str, *, until: tuple[str, ...] = END_TYPES) -> Any:
        await self.socket.send_generate_reply(GenerateReplyPayload(type="generate_reply",
                                                                   user_message=text))
        return await self.until(*until)

    def of(self, kind: str) -> list[Any]:
        return [m for m in self.seen if getattr(m, "type", None) == kind]

    def spoken(self) -> str:
        return " ".join(m.text for m in self.of("audio_chunk") if m.text)


@contextlib.asynccontextmanager
async def talk_to(client: AsyncPhonic, **config: Any) -> AsyncIterator[Talk]:
    """A configured conversation over the SDK; closing the block hangs up."""
    async with client.conversations.connect() as socket:
        talk = Talk(socket)
        await socket.send_config(ConfigPayload(**{
            "type": "config", "input_format": "pcm_16000", "output_format": "pcm_16000",
            "stream_ahead_of_real_time": True, **config}))
        await talk.until("ready_to_start_conversation")
        yield talk


async def stored(server: LiveServer, conversation_id: str | None) -> dict[str, Any]:
    """The stored conversation (raw JSON) once it has ended."""
    async with httpx.AsyncClient(base_url=f"{server.url}/v1", headers={
            "Authorization": f"Bearer {server.api_key}"}) as http:
        for _ in range(100):
            conv: dict[str, Any] = (await http.get(f"/conversations/{conversation_id}")
                                    ).json()["conversation"]
            if conv["ended_at"] is not None:
                return conv
            await asyncio.sleep(0.05)
    raise AssertionError("conversation did not end")
