"""Inbound phone calls over the fake Twilio: signatures, routing by number, the stream,
a spoken conversation with barge-in and keypad input, the caller hanging up."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.telephony.conftest import (
    AGENT_NUMBER,
    CALLER,
    PhoneServer,
    conversation,
    phone_agent,
    tone_mulaw,
    voice_url,
)
from tests.telephony.fake_twilio import FRAME, FakeTwilio, MediaStream, until

WELCOME = "Thanks for calling the front desk."


class JsonEndpoint:
    """A local configuration endpoint that records each request."""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply, self.requests = reply, []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(await request.json())
        return web.json_response(self.reply)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/config", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/config"  # type: ignore[union-attr]


@pytest.fixture
async def config_endpoint() -> AsyncIterator[JsonEndpoint]:
    endpoint = JsonEndpoint({"welcome_message": "Hello from the configuration endpoint.",
                             "metadata": {"crm": "42"}})
    await endpoint.start()
    yield endpoint
    assert endpoint.runner is not None
    await endpoint.runner.cleanup()


def _verbs(xml: str) -> list[str]:
    return [el.tag for el in ET.fromstring(xml)]


async def test_webhooks_and_streams_need_a_valid_signature(phone_server: PhoneServer,
                                                           fake_twilio: FakeTwilio) -> None:
    server = phone_server()
    await phone_agent(server)
    url = voice_url(server)
    _, missing = await fake_twilio.inbound(url, CALLER, AGENT_NUMBER, signature="")
    _, wrong = await fake_twilio.inbound(url, CALLER, AGENT_NUMBER, signature="bm9wZQ==")
    # Signed for another URL (a proxy's view of the request is not what Twilio signed).
    other = fake_twilio.validator.compute_signature(url.replace("127.0.0.1", "localhost"), {})
    _, moved = await fake_twilio.inbound(url, CALLER, AGENT_NUMBER, signature=other)
    assert (missing.status_code, wrong.status_code, moved.status_code) == (403, 403, 403)
    call, ok = await fake_twilio.inbound(url, CALLER, AGENT_NUMBER)
    assert ok.status_code == 200 and _verbs(ok.text) == ["Connect"]
    stream_url = ET.fromstring(ok.text).find("Connect/Stream").get("url")  # type: ignore[union-attr]
    assert stream_url == server.ws_url + "/twilio/stream"
    unsigned = MediaStream(fake_twilio, call, stream_url, {"token": "x"})
    assert not await unsigned.open(signature="bm9wZQ==")
    assert unsigned.rejected == 403
    await fake_twilio.hang_up(call)


async def test_unknown_number_disabled_agent_and_rollout(phone_server: PhoneServer,
                                                         fake_twilio: FakeTwilio) -> None:
    server = phone_server()
    client = await phone_agent(server)
    await client.agents.create(name="overflow", phone_number="custom",
                               custom_phone_numbers=["+15550002000"], inbound_rollout=0.0,
                               inbound_rollout_forward_phone_number="+15559990000")
    await client.agents.create(name="closed", phone_number="custom",
                               custom_phone_numbers=["+15550003000"])
    with sqlite3.connect(server.data_dir / "phone.db") as db:
        db.execute("UPDATE agents SET is_disabled = 1 WHERE name = 'closed'")
    unknown, reply = await fake_twilio.inbound(voice_url(server), CALLER, "+15550009999")
    assert _verbs(reply.text) == ["Say", "Hangup"]
    await until(lambda: unknown.ended.is_set())
    assert "not in service" in unknown.said[0] and not unknown.streams
    _, reply = await fake_twilio.inbound(voice_url(server), CALLER, "+15550003000")
    assert _verbs(reply.text) == ["Say", "Hangup"] and "not taking calls" in reply.text
    forwarded, reply = await fake_twilio.inbound(voice_url(server), CALLER, "+15550002000")
    assert _verbs(reply.text) == ["Dial"]
    await until(lambda: bool(forwarded.dials))
    assert forwarded.dials[0]["number"] == "+15559990000"
    assert forwarded.dials[0]["callerId"] == CALLER
    listed = await client.conversations.list()
    assert listed.conversations == []  # nothing started for any of them


async def test_configuration_endpoint_gets_the_call_info(
        phone_server: PhoneServer, fake_twilio: FakeTwilio,
        config_endpoint: JsonEndpoint) -> None:
    server = phone_server()
    client = await phone_agent(server, welcome_message=WELCOME,
                               configuration_endpoint={"url": config_endpoint.url})
    call, _ = await fake_twilio.inbound(voice_url(server), CALLER, AGENT_NUMBER)
    stream = await call.stream()
    assert set(stream.parameters) == {"token", "conversation_id"}
    conv_id = stream.parameters["conversation_id"]
    sent = config_endpoint.requests[0]
    assert sent["conversation_id"] == conv_id and sent["agent"]["name"] == "front-desk"
    assert (sent["from_phone_number"], sent["to_phone_number"], sent["twilio_call_sid"]) == (
        CALLER, AGENT_NUMBER, call.sid)
    await stream.wait_quiet()
    await fake_twilio.hang_up(call)
    conv = await conversation(client, conv_id)
    assert conv.items[0].live_transcript == "Hello from the configuration endpoint."
    info = conv.call_info
    assert (info.from_phone_number, info.to_phone_number, info.twilio_call_sid) == (
        CALLER, AGENT_NUMBER, call.sid)
    assert conv.metadata == {"crm": "42"} and conv.ended_by == "user"


async def test_a_spoken_call_with_keypad_input_and_the_caller_hanging_up(
        phone_server: PhoneServer, fake_twilio: FakeTwilio) -> None:
    server = phone_server(["I can help with that.", "You pressed one."],
                          ["I need help with my booking"])
    client = await phone_agent(server, welcome_message=WELCOME)
    call, _ = await fake_twilio.inbound(voice_url(server), CALLER, AGENT_NUMBER)
    stream = await call.stream()
    await stream.wait_quiet()
    welcome_frames = len(stream.played)
    await stream.say(tone_mulaw(700))
    # FakeTTS speaks 20 ms per character: one 20 ms Twilio frame each
    await until(lambda: len(stream.played) > welcome_frames + 15, within=10)
    await stream.wait_quiet()
    await stream.dtmf("1")
    await stream.dtmf("#")
    await until(lambda: len(stream.played) > welcome_frames + 21 + 10, within=10)
    await stream.wait_quiet()
    media = stream.sent("media")
    assert media and stream.bad_frames == 0
    assert all(len(base64.b64decode(m["media"]["payload"])) == FRAME for m in media)
    kinds = [m["event"] for m in stream.received]
    assert kinds[0] == "media" and kinds.count("mark") >= 3
    assert all(name for name, _, cleared in stream.marks if not cleared)
    await fake_twilio.hang_up(call)
    conv_id = stream.parameters["conversation_id"]
    conv = await conversation(client, conv_id)
    assert conv.ended_by == "user"
    assert [(i.role, i.live_transcript) for i in conv.items] == [
        ("assistant", WELCOME), ("user", "I need help with my booking"),
        ("assistant", "I can help with that."), ("user", "The caller pressed 1."),
        ("assistant", "You pressed one.")]
    assert conv.items[1].duration_ms > 500 and len(conv.analysis.latencies_ms) == 1
    assert (conv.input_format, conv.output_format) == ("mulaw_8000", "mulaw_8000")
    assert conv.audio_url  # recorded like any conversation
    # The agent's audio is the reply, played at the fake's real-time clock.
    spoken = len(WELCOME) + len("I can help with that.") + len("You pressed one.")
    assert abs(len(stream.played) - spoken) <= 6  # whole frames, a little padding


async def test_barge_in_clears_twilio_and_keeps_the_heard_words(
        phone_server: PhoneServer, fake_twilio: FakeTwilio) -> None:
    long_reply = ("Our opening hours are nine to five on weekdays and ten to four on "
                  "Saturdays and we are closed on Sundays and public holidays.")
    server = phone_server([long_reply, "Sure."], ["when are you open", "stop please"])
    client = await phone_agent(server)
    call, _ = await fake_twilio.inbound(voice_url(server), CALLER, AGENT_NUMBER)
    stream = await call.stream()
    await stream.say(tone_mulaw(600))
    await until(lambda: len(stream.played) >= 60, within=10)  # 1.2 s of the reply heard
    await stream.say(tone_mulaw(600))  # the caller talks over it
    await until(lambda: bool(stream.clears), within=5)
    await stream.wait_quiet()
    cleared = [name for name, _, by_clear in stream.marks if by_clear]
    assert cleared, "the pending marks came back when Twilio cleared"
    await fake_twilio.hang_up(call)
    conv = await conversation(client, stream.parameters["conversation_id"])
    first = conv.items[1]
    assert first.role == "assistant" and first.live_transcript
    assert long_reply.startswith(first.live_transcript)
    assert len(first.live_transcript) < len(long_reply) * 0.8
    assert conv.analysis.interruptions_count == 1
    # What was stored as heard matches what the fake played before the clear (±0.3 s).
    played_before = sum(1 for p in stream.played if p.at <= stream.clears[0]) * 20
    assert abs(first.duration_ms - played_before) < 300
    await asyncio.sleep(0)
