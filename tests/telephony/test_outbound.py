"""Outbound calls through the official SDK's ``conversations.outbound_call`` and the fake
Twilio: answered, busy, no answer, failed, refused, dry run, cancelled, voicemail."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from phonic.errors import BadRequestError

from openline.providers.testing import ScriptedReply
from tests.telephony.conftest import (
    AGENT_NUMBER,
    PhoneServer,
    conversation,
    phone_agent,
    tone_mulaw,
)
from tests.telephony.fake_twilio import FakeTwilio, until

CALLEE = "+15558880202"
GREETING = "Hello, this is the clinic calling about your appointment."
VOICEMAIL = "Please call the clinic back about your appointment."


async def test_an_answered_call_talks_and_the_agent_hangs_up(phone_server: PhoneServer,
                                                             fake_twilio: FakeTwilio) -> None:
    server = phone_server(["Great, see you then.",
                           ScriptedReply.call("natural_conversation_ending")],
                          ["yes that works", "bye"])
    client = await phone_agent(server, welcome_message=GREETING,
                               tools=["natural_conversation_ending"])
    placed = await client.conversations.outbound_call(
        to_phone_number=CALLEE, config={"agent": "front-desk",
                                        "template_variables": {"name": "Ann"}})
    assert placed.conversation_id and placed.dry_run is False
    call = await fake_twilio.next_call()
    assert (call.to, call.from_) == (CALLEE, AGENT_NUMBER)
    assert sorted(call.form["StatusCallbackEvent"]) == sorted(
        ["initiated", "ringing", "answered", "completed"])
    assert call.value("StatusCallback").endswith(  # type: ignore[union-attr]
        f"/twilio/calls/{placed.conversation_id}/status")
    assert "MachineDetection" not in call.form
    stream_el = ET.fromstring(call.value("Twiml") or "").find("Connect/Stream")
    assert stream_el is not None and "?" not in (stream_el.get("url") or "")
    stream = await call.stream()
    assert stream.parameters["conversation_id"] == placed.conversation_id
    await stream.wait_quiet()
    await stream.say(tone_mulaw(600))
    await until(lambda: len(stream.played) > len(GREETING) + 15, within=10)
    await stream.wait_quiet()
    await stream.say(tone_mulaw(600))  # "bye": the agent ends the call
    await until(lambda: call.ended.is_set(), within=15)
    assert call.updates[-1]["Status"] == ["completed"]  # the agent ended the call
    conv = await conversation(client, placed.conversation_id)
    assert conv.ended_by == "assistant"
    assert [i.live_transcript for i in conv.items][:3] == [GREETING, "yes that works",
                                                           "Great, see you then."]
    info = conv.call_info
    assert (info.from_phone_number, info.to_phone_number, info.twilio_call_sid) == (
        AGENT_NUMBER, CALLEE, call.sid)
    assert call.statuses()[:3] == ["initiated", "ringing", "in-progress"]
    assert conv.metadata["twilio"]["call_status"] in ("in-progress", "completed")


@pytest.mark.parametrize(("outcome", "ended_by"), [
    ("busy", "call_busy"), ("no-answer", "call_no_answer"), ("failed", "call_failed")])
async def test_unanswered_calls_end_their_conversation(
        phone_server: PhoneServer, fake_twilio: FakeTwilio, outcome: str, ended_by: str) -> None:
    server = phone_server()
    client = await phone_agent(server)
    fake_twilio.answers[CALLEE] = outcome
    placed = await client.conversations.outbound_call(to_phone_number=CALLEE,
                                                      config={"agent": "front-desk"})
    conv = await conversation(client, placed.conversation_id, within=5)
    assert conv.ended_by == ended_by and conv.items == []
    call = next(iter(fake_twilio.calls.values()))
    assert not call.streams and call.statuses()[-1] == outcome


async def test_status_callbacks_are_signed_and_idempotent(phone_server: PhoneServer,
                                                          fake_twilio: FakeTwilio) -> None:
    server = phone_server()
    client = await phone_agent(server)
    fake_twilio.ring_s = 3.0  # keep it ringing while the test replays callbacks
    placed = await client.conversations.outbound_call(to_phone_number=CALLEE,
                                                      config={"agent": "front-desk"})
    call = await fake_twilio.next_call()
    url = f"{server.url}/twilio/calls/{placed.conversation_id}/status"
    busy = {"CallSid": call.sid, "AccountSid": fake_twilio.account_sid, "CallStatus": "busy"}
    forged = await fake_twilio.post(url, busy, signature="bm9wZQ==")
    unsigned = await fake_twilio.post(url, busy, signature="")
    assert (forged.status_code, unsigned.status_code) == (403, 403)
    assert (await conversation(client, placed.conversation_id, ended=False)).ended_at is None
    first = await fake_twilio.post(url, busy)
    again = await fake_twilio.post(url, busy)  # Twilio retries; nothing happens twice
    no_answer = await fake_twilio.post(url, {**busy, "CallStatus": "no-answer"})
    assert (first.status_code, again.status_code, no_answer.status_code) == (200, 200, 200)
    conv = await conversation(client, placed.conversation_id, within=5)
    assert conv.ended_by == "call_busy"


async def test_dry_run_and_refusals(phone_server: PhoneServer, fake_twilio: FakeTwilio) -> None:
    server = phone_server()
    client = await phone_agent(server)
    await client.agents.create(name="no-number")
    dry = await client.conversations.outbound_call(
        to_phone_number=CALLEE, config={"agent": "front-desk"}, dry_run=True)
    assert (dry.conversation_id, dry.dry_run) == (None, True)
    with pytest.raises(BadRequestError) as bad_number:
        await client.conversations.outbound_call(to_phone_number="555-1234",
                                                 config={"agent": "front-desk"})
    assert "to_phone_number" in bad_number.value.body["param_errors"]
    with pytest.raises(BadRequestError) as no_number:
        await client.conversations.outbound_call(to_phone_number=CALLEE,
                                                 config={"agent": "no-number"})
    assert "phone number" in no_number.value.body["error"]["message"]
    fake_twilio.rest_failures.append((CALLEE, 21211))
    with pytest.raises(BadRequestError) as refused:
        await client.conversations.outbound_call(to_phone_number=CALLEE,
                                                 config={"agent": "front-desk"})
    assert "21211" in refused.value.body["error"]["message"]
    assert fake_twilio.calls == {}  # the dry run and the refusals placed nothing
    listed = (await client.conversations.list()).conversations
    assert [c.ended_by for c in listed] == ["call_failed"]  # Twilio's refusal is stored


async def test_cancel_a_ringing_call_and_a_live_one(phone_server: PhoneServer,
                                                    fake_twilio: FakeTwilio) -> None:
    server = phone_server()
    client = await phone_agent(server, welcome_message=GREETING)
    fake_twilio.ring_s = 5.0
    ringing = await client.conversations.outbound_call(to_phone_number=CALLEE,
                                                       config={"agent": "front-desk"})
    first = await fake_twilio.next_call()
    await until(lambda: first.statuses() == ["initiated"])
    await client.conversations.cancel(ringing.conversation_id)
    conv = await conversation(client, ringing.conversation_id, within=5)
    assert conv.ended_by == "user_canceled"
    assert first.updates[-1]["Status"] == ["canceled"]
    fake_twilio.ring_s = 0.1
    live = await client.conversations.outbound_call(to_phone_number=CALLEE,
                                                    config={"agent": "front-desk"})
    second = await fake_twilio.next_call()
    stream = await second.stream()
    await stream.wait_played(0.3)
    await client.conversations.cancel(live.conversation_id)
    conv = await conversation(client, live.conversation_id, within=5)
    assert conv.ended_by == "user_canceled"
    await until(lambda: second.ended.is_set())
    assert second.updates[-1]["Status"] == ["completed"]


async def test_voicemail_is_left_on_a_machine(phone_server: PhoneServer,
                                              fake_twilio: FakeTwilio) -> None:
    server = phone_server()
    client = await phone_agent(server, welcome_message=GREETING)
    fake_twilio.answers[CALLEE] = "machine_end_beep"
    placed = await client.conversations.outbound_call(
        to_phone_number=CALLEE, config={"agent": "front-desk", "additional_params": {
            "detect_voicemail": True, "voicemail_message": VOICEMAIL}})
    call = await fake_twilio.next_call()
    assert (call.value("MachineDetection"), call.value("AsyncAmd")) == (
        "DetectMessageEnd", "true")
    assert call.value("AsyncAmdStatusCallback").endswith("/amd")  # type: ignore[union-attr]
    stream = await call.stream()
    await asyncio.sleep(fake_twilio.amd_delay_s * 0.7)
    assert stream.played == []  # the greeting waits for the machine detection
    await until(lambda: call.ended.is_set(), within=15)
    conv = await conversation(client, placed.conversation_id)
    assert conv.ended_by == "voicemail"
    assert [i.live_transcript for i in conv.items] == [VOICEMAIL]
    assert conv.metadata["twilio"]["answered_by"] == "machine_end_beep"
    assert conv.metadata["twilio"]["voicemail_left"] is True
    assert len(stream.played) * 20 >= len(VOICEMAIL) * 20 - 100  # it was heard in full
    assert call.updates[-1]["Status"] == ["completed"]


async def test_a_person_gets_the_greeting_once_detected(phone_server: PhoneServer,
                                                        fake_twilio: FakeTwilio) -> None:
    server = phone_server()
    client = await phone_agent(server, welcome_message=GREETING)
    placed = await client.conversations.outbound_call(
        to_phone_number=CALLEE, config={"agent": "front-desk", "additional_params": {
            "detect_voicemail": True, "voicemail_message": VOICEMAIL}})
    call = await fake_twilio.next_call()
    stream = await call.stream()
    await stream.wait_quiet()
    # The greeting was held until the AMD result said a person answered.
    assert stream.played[0].at > call.sent_at("/amd")
    await fake_twilio.hang_up(call)
    conv = await conversation(client, placed.conversation_id)
    assert [i.live_transcript for i in conv.items] == [GREETING]
    assert conv.metadata["twilio"]["answered_by"] == "human" and conv.ended_by == "user"
