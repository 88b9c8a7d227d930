"""The Redis live registry between two nodes in one process (real Redis), and its codec."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from openline.services.control_channel import (
    CONTROLS,
    UnknownControl,
    decode_control,
    encode_control,
    event_dict,
)
from openline.services.live_registry import OwnerUnreachable
from openline.services.live_registry_redis import RedisLiveRegistry
from openline.transports import base as tb
from openline.voice import events as ev
from tests.scale.redis_support import REDIS_URL, drop_keys, unique_prefix


class Call:
    """A live call as the registry sees it: ends on request, applies controls."""

    def __init__(self, conversation_id: str) -> None:
        self.id, self.workspace_id = conversation_id, "ws_1"
        self.ended_by: str | None = None
        self.controls: list[tb.Control] = []
        self._finished = asyncio.Event()

    def end(self, ended_by: str) -> None:
        self.ended_by = ended_by
        self._finished.set()

    async def wait_finished(self) -> None:
        await self._finished.wait()

    async def control(self, command: tb.Control) -> None:
        if isinstance(command, tb.ToolCallOutput):
            raise tb.ControlRejected("no such tool call", "unknown_tool_call",
                                     {"tool_call_id": "not waiting"})
        self.controls.append(command)


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[RedisLiveRegistry, RedisLiveRegistry]]:
    prefix = unique_prefix("registry")
    redis = Redis.from_url(REDIS_URL)
    a = RedisLiveRegistry(redis, "node-a", prefix=prefix, reply_timeout_s=2)
    b = RedisLiveRegistry(redis, "node-b", prefix=prefix, reply_timeout_s=2)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()
    await drop_keys(redis, f"{prefix}:*")
    await redis.aclose()


async def test_commands_reach_the_owner_and_answers_come_back(
        nodes: tuple[RedisLiveRegistry, RedisLiveRegistry]) -> None:
    a, b = nodes
    call = Call("conv_1")
    a.add(call)
    assert await b.alive_nodes() >= {"node-a", "node-b"}
    await b.control("conv_1", "node-a", tb.Say("hi there", interruptible=False))
    assert call.controls == [tb.Say("hi there", interruptible=False)]
    with pytest.raises(tb.ControlRejected) as rejected:
        await b.control("conv_1", "node-a", tb.ToolCallOutput("t1", {"x": 1}))
    assert (rejected.value.code, rejected.value.param_errors) == (
        "unknown_tool_call", {"tool_call_id": "not waiting"})
    events: list[dict[str, object]] = []

    async def watch() -> None:
        async for event in b.watch("conv_1", "node-a"):
            events.append(event)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.3)
    a.publish("conv_1", ev.InputText("hello", "en"))
    a.publish("conv_1", ev.AudioOut(b"\x01\x02", "Okay.", {"stt_ms": 12.0}))
    await asyncio.sleep(0.3)
    assert await b.cancel("conv_1", "node-a")  # acknowledged once the call finished
    a.remove("conv_1")
    await asyncio.wait_for(watcher, 5)
    assert call.ended_by == "user_canceled"
    assert events == [{"type": "InputText", "text": "hello", "language": "en"},
                      {"type": "AudioOut", "audio": "AQI=", "text": "Okay.",
                       "timings": {"stt_ms": 12.0}}]


async def test_a_dead_owner_is_known_at_once(
        nodes: tuple[RedisLiveRegistry, RedisLiveRegistry]) -> None:
    _, b = nodes
    start = time.monotonic()
    assert not await b.cancel("conv_gone", "node-that-died")  # the route answers 504
    with pytest.raises(OwnerUnreachable):
        await b.control("conv_gone", "node-that-died", tb.Mute())
    assert time.monotonic() - start < 1.0  # no subscriber: no waiting for a timeout


def test_every_control_survives_the_wire() -> None:
    samples = [tb.UpdateSystemPrompt("p"), tb.AddSystemMessage("m"), tb.SetExternalId("e"),
               tb.GenerateReply("s", "u"), tb.Say("t", False), tb.Mute(), tb.Unmute(),
               tb.Reset("r"), tb.ToolCallOutput("id", {"a": [1]}),
               tb.UpdateTools(["keypad_input", {"type": "inline"}])]
    assert {type(s).__name__ for s in samples} == set(CONTROLS)
    for sample in samples:
        assert decode_control(encode_control(sample)) == sample
    with pytest.raises(UnknownControl):
        decode_control({"type": "Explode"})
    assert event_dict(ev.UserStartedSpeaking()) == {"type": "UserStartedSpeaking"}
