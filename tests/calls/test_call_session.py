"""The call session with a transport that is not the Phonic socket.

An in-memory transport implements ``CallTransport``: the session starts a conversation
from a ``StartCall``, feeds the engine from the transport, routes controls, hands a
dropped call to a returning peer, hangs up on the wire, and stores the outcome - the
same path every transport (STS, Twilio, SIP, browser) takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openline.boot.root import Runtime, build_runtime
from openline.services import call_session
from openline.services.call_setup import CallInfo, StartCall
from openline.services.principal import Principal
from openline.services.session_config import overrides_from_config
from openline.settings import Settings
from openline.store import tables as t
from openline.transports import base as tb
from openline.voice import events as ev
from tests.conftest import fake_providers

RATE = 16_000
Input = bytes | str | tb.Control | None


@dataclass
class MemoryTransport:
    """A peer that records what it is told and plays a scripted inbox."""

    inbox: asyncio.Queue[Input] = field(default_factory=asyncio.Queue)
    events: list[ev.EngineEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)
    resumed_event: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send_event(self, event: ev.EngineEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def clear(self) -> None:
        self.events.append(ev.ClearAudio())

    async def send_dtmf(self, digits: str) -> None:
        """Recorded through the ``Dtmf`` event itself."""

    async def transfer(self, destination: str) -> bool:
        return False

    async def hangup(self, ended_by: str) -> None:
        self.hung_up.append(ended_by)

    async def resumed(self) -> None:
        self.resumed_event.set()

    def audio_sink(self, output_format: Any) -> None:
        return None

    async def serve_input(self, call: tb.CallInput) -> None:
        while True:
            item = await self.inbox.get()
            if item is None:
                call.hangup()
                return
            if item == "drop":
                raise tb.Dropped(datetime.now(UTC))
            if isinstance(item, bytes):
                call.push_audio(item)
            elif isinstance(item, str):
                call.push_dtmf(item)
            else:
                try:
                    await call.control(item)
                except tb.ControlRejected as exc:
                    self.rejected.append(exc.code)

    def texts(self) -> str:
        return " ".join(e.text for e in self.events if isinstance(e, ev.AudioOut) and e.text)

    async def wait_for(self, cls: type[Any], count: int = 1, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while sum(isinstance(e, cls) for e in self.events) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/c.db",
                        allow_private_urls=True)
    rt = build_runtime(settings, fake_providers())
    await rt.start(verbose=False)
    yield rt
    await rt.stop()


async def _principal(rt: Runtime) -> Principal:
    ws = await rt.services.auth.default_workspace()
    return Principal(ws.id, ws.name)


def _start(who: Principal, **overrides: Any) -> StartCall:
    return StartCall(who, overrides=overrides_from_config({
        "input_format": "pcm_16000", "output_format": "pcm_16000",
        "welcome_message": "Welcome to the line.", **overrides}),
                     origin="direct",
                     call_info=CallInfo(from_phone_number="+15555550111",
                                        to_phone_number="+15555550122",
                                        twilio_call_sid="CA0123"))


async def _row(rt: Runtime, conv_id: str) -> t.Conversation:
    async with rt.db.session() as s:
        row = await s.get(t.Conversation, conv_id)
        assert row is not None
        return row


async def test_a_call_on_any_transport_runs_and_is_stored(runtime: Runtime) -> None:
    who, peer = await _principal(runtime), MemoryTransport()
    opened: list[str] = []

    async def on_open(call: Any) -> None:
        opened.append(call.conversation_id)

    task = asyncio.create_task(runtime.services.live.run_call(_start(who), peer, on_open))
    await peer.wait_for(ev.AssistantFinishedSpeaking)
    assert peer.texts() == "Welcome to the line."
    await peer.inbox.put(tb.Say("Anything else?"))
    await peer.inbox.put(tb.ToolCallOutput("call_nobody", {"x": 1}))
    await peer.wait_for(ev.AssistantFinishedSpeaking, 2)
    assert peer.rejected == ["unknown_tool_call"]
    await peer.inbox.put(None)  # the caller hangs up
    result = await asyncio.wait_for(task, 10)
    assert result.ended_by == "user" and peer.hung_up == ["user"]
    row = await _row(runtime, opened[0])
    assert row.ended_by == "user" and row.lease_until is None
    assert row.call_info == {"from_phone_number": "+15555550111",
                             "to_phone_number": "+15555550122", "twilio_call_sid": "CA0123"}
    assert row.live_transcript == "Assistant: Welcome to the line.\nAssistant: Anything else?"
    assert runtime.services.live.registry.local_ids() == []


async def test_a_dropped_peer_comes_back_and_the_call_goes_on(runtime: Runtime) -> None:
    who, first, second = await _principal(runtime), MemoryTransport(), MemoryTransport()
    ids: list[str] = []

    async def on_open(call: Any) -> None:
        ids.append(call.conversation_id)

    task = asyncio.create_task(runtime.services.live.run_call(_start(who), first, on_open))
    await first.wait_for(ev.AssistantFinishedSpeaking)
    await first.inbox.put("drop")
    other = Principal("ws_other", "other")
    assert not await runtime.services.live.resume(other, ids[0], MemoryTransport())
    resumed = asyncio.create_task(runtime.services.live.resume(who, ids[0], second))
    await asyncio.wait_for(second.resumed_event.wait(), 5)
    before = len(first.events)
    await second.inbox.put(tb.Say("Still here."))
    await second.wait_for(ev.AssistantFinishedSpeaking)
    assert "Still here." in second.texts() and len(first.events) == before
    runtime.services.live.registry.local(ids[0]).end("assistant")  # type: ignore[union-attr]
    assert (await asyncio.wait_for(task, 10)).ended_by == "assistant"
    assert await asyncio.wait_for(resumed, 5) is True
    assert second.hung_up == ["assistant"] and first.hung_up == []


async def test_a_peer_that_never_returns_ends_the_call_when_it_dropped(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call_session, "RECONNECT_GRACE_S", 0.5)
    who, peer = await _principal(runtime), MemoryTransport()
    task = asyncio.create_task(runtime.services.live.run_call(_start(who), peer))
    await peer.wait_for(ev.AssistantFinishedSpeaking)
    dropped_at = datetime.now(UTC)
    await peer.inbox.put("drop")
    result = await asyncio.wait_for(task, 10)
    assert result.ended_by == "user"
    async with runtime.db.session() as s:
        from sqlalchemy import select
        row = await s.scalar(select(t.Conversation).order_by(t.Conversation.started_at.desc()))
    assert row is not None and row.ended_at is not None
    # it ended when the peer went away, not when the grace period ran out
    assert abs(row.ended_at - dropped_at) < timedelta(seconds=0.3)


async def test_caller_audio_reaches_the_engine_through_the_transport(runtime: Runtime) -> None:
    who, peer = await _principal(runtime), MemoryTransport()
    task = asyncio.create_task(runtime.services.live.run_call(
        _start(who, welcome_message=""), peer))
    t_ = np.arange(RATE * 600 // 1000) / RATE
    speech = (np.sin(2 * np.pi * 300 * t_) * 9000).astype(np.int16)
    audio = np.concatenate([speech, np.zeros(RATE, dtype=np.int16)])
    for i in range(0, audio.size, RATE // 50):
        await peer.inbox.put(audio[i:i + RATE // 50].tobytes())
    await peer.wait_for(ev.InputText)
    await peer.wait_for(ev.AssistantFinishedSpeaking)
    assert [e.text for e in peer.events if isinstance(e, ev.InputText)] == ["hello"]
    await peer.inbox.put(None)
    await asyncio.wait_for(task, 10)


async def test_barge_in_asks_the_transport_to_clear_and_keypad_digits_are_a_turn(
        runtime: Runtime) -> None:
    who, peer = await _principal(runtime), MemoryTransport()
    ids: list[str] = []

    async def on_open(call: Any) -> None:
        ids.append(call.conversation_id)

    long_welcome = "Welcome to the line, we are very glad you called us today about your order."
    task = asyncio.create_task(runtime.services.live.run_call(
        _start(who, welcome_message=long_welcome), peer, on_open))
    await peer.wait_for(ev.AssistantStartedSpeaking)
    t_ = np.arange(RATE * 700 // 1000) / RATE
    speech = (np.sin(2 * np.pi * 300 * t_) * 9000).astype(np.int16)
    for i in range(0, speech.size, RATE // 50):  # the caller talks over the welcome
        await peer.inbox.put(speech[i:i + RATE // 50].tobytes())
        await asyncio.sleep(0.02)
    await peer.wait_for(ev.ClearAudio)
    kinds = [type(e) for e in peer.events]
    assert kinds.count(ev.ClearAudio) == 1
    assert kinds.index(ev.UserStartedSpeaking) < kinds.index(ev.ClearAudio)
    for _ in range(50):  # then a second of silence ends the caller's turn
        await peer.inbox.put(np.zeros(RATE // 50, np.int16).tobytes())
        await asyncio.sleep(0.02)
    await peer.wait_for(ev.InterruptedResponse)
    heard = [e.text for e in peer.events if isinstance(e, ev.InterruptedResponse)]
    assert heard and long_welcome.startswith(heard[0]) and heard[0] != long_welcome
    started = sum(isinstance(e, ev.AssistantStartedSpeaking) for e in peer.events)
    await peer.inbox.put("12#")  # keypad digits from the caller
    await peer.wait_for(ev.DtmfReceived)
    await peer.wait_for(ev.AssistantStartedSpeaking, started + 1)
    await peer.inbox.put(None)
    await asyncio.wait_for(task, 10)
    async with runtime.db.session() as s:
        from sqlalchemy import select
        items = list(await s.scalars(select(t.ConversationItem).where(
            t.ConversationItem.conversation_id == ids[0]).order_by(t.ConversationItem.item_idx)))
    assert "The caller pressed 1 2." in [i.live_transcript for i in items if i.role == "user"]
