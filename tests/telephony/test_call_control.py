"""Call control over the fake Twilio: transfer to a number (answered, not answered and
back to the agent) and keypad tones to the far end (a new stream for the same call)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from openline.providers.llm.base import ToolCall
from openline.providers.testing import ScriptedReply
from openline.services.telephony.service import TRANSFER_RETRIES
from tests.conftest import LiveServer
from tests.postcall.conftest import WebhookReceiver
from tests.telephony.conftest import (
    AGENT_NUMBER,
    CALLER,
    PhoneServer,
    conversation,
    phone_agent,
    sdk,
    tone_mulaw,
    voice_url,
)
from tests.telephony.fake_twilio import FakeTwilio, until

#: post-call work and webhook deliveries without the production waits
FAST_JOBS = {"job_poll_s": 0.1, "job_retry_base_s": 0.05}

BILLING = "+15554440000"
SAY_TRANSFER = "Let me put you through to billing."


def _transfer_reply() -> ScriptedReply:
    return ScriptedReply(SAY_TRANSFER, (ToolCall("t1", "transfer_to_billing", "{}"),))


async def _transfer_tool(server: object, **fields: object) -> None:
    client = sdk(server)  # type: ignore[arg-type]
    await client.tools.create(name="transfer_to_billing", description="Billing questions",
                              type="built_in_transfer_to_phone_number", execution_mode="sync",
                              phone_number=BILLING, dtmf="ww123#", **fields)  # type: ignore[arg-type]


async def test_a_transfer_that_is_answered_ends_the_conversation(
        phone_server: PhoneServer, fake_twilio: FakeTwilio) -> None:
    server = phone_server([_transfer_reply()], ["I have a billing question"])
    await _transfer_tool(server)
    client = await phone_agent(server, tools=["transfer_to_billing"])
    call, _ = await fake_twilio.inbound(voice_url(server), CALLER, AGENT_NUMBER)
    stream = await call.stream()
    await stream.say(tone_mulaw(600))
    await until(lambda: bool(call.dials), within=15)
    dial = call.dials[0]
    assert (dial["number"], dial["sendDigits"], dial["callerId"], dial["answerOnBridge"]) == (
        BILLING, "ww123#", AGENT_NUMBER, "true")
    # What the agent said before transferring was heard in full before the TwiML changed.
    assert len(stream.played) >= len(SAY_TRANSFER) - 2
    assert stream.sent("mark") and stream.closed.is_set()
    conv = await conversation(client, stream.parameters["conversation_id"])
    assert conv.ended_by == "transferred"
    assert conv.metadata["twilio"]["transfer"] == {"to": BILLING, "status": "answered"}
    record = conv.items[-1].tool_calls[0]
    assert record.tool.name == "transfer_to_billing"
    assert all("Status" not in update for update in call.updates)  # never hung up on them


async def test_an_unanswered_transfer_comes_back_to_the_agent(
        phone_server: PhoneServer, fake_twilio: FakeTwilio) -> None:
    server = phone_server([_transfer_reply(), "Sorry, billing did not answer."],
                          ["I have a billing question"])
    await _transfer_tool(server, on_transfer_no_answer="return_to_assistant")
    client = await phone_agent(server, tools=["transfer_to_billing"])
    fake_twilio.dial_answers[BILLING] = "no-answer"
    call, _ = await fake_twilio.inbound(voice_url(server), CALLER, AGENT_NUMBER)
    first = await call.stream()
    await first.say(tone_mulaw(600))
    back = await call.wait_streams(2)
    assert back.stream_sid != first.stream_sid
    assert back.parameters["conversation_id"] == first.parameters["conversation_id"]
    assert back.parameters["token"] != first.parameters["token"]
    await back.wait_quiet()
    await fake_twilio.hang_up(call)
    conv = await conversation(client, first.parameters["conversation_id"])
    assert conv.ended_by == "user"
    assert conv.items[-1].live_transcript == "Sorry, billing did not answer."
    assert conv.metadata["twilio"]["transfer"] == {"to": BILLING, "status": "no-answer"}
    assert len(back.played) >= len("Sorry, billing did not answer.") - 2


async def test_keypad_tones_reach_the_far_end_and_the_call_goes_on(
        phone_server: PhoneServer, fake_twilio: FakeTwilio) -> None:
    server = phone_server([
        ScriptedReply("Pressing one for you.",
                      (ToolCall("k1", "keypad_input", '{"digits": "1"}'),)),
        "Done, you are in the bookings menu.", "Anything else?"],
        ["press one for bookings", "thanks"],
        llm={"first_token_delay_s": 0.3})  # a model takes a moment after the tool result
    client = await phone_agent(server, tools=["keypad_input"])
    call, _ = await fake_twilio.inbound(voice_url(server), CALLER, AGENT_NUMBER)
    first = await call.stream()
    await first.say(tone_mulaw(600))
    second = await call.wait_streams(2)
    assert call.digits == ["1"] and first.closed.is_set()
    assert [verb for verb, _ in call.verbs][-2:] == ["Play", "Connect"]
    await second.wait_quiet()
    # What the agent said after pressing the key followed the tones, on the new stream.
    assert len(first.played) <= len("Pressing one for you.") + 2
    # The first clause is synthesized on its own ("Done," then the rest): the space between
    # them is no audio. Two 20 ms frames may be lost to the stream switch.
    assert len(second.played) >= len("Done," "you are in the bookings menu.") - 2
    heard = len(second.played)
    await second.say(tone_mulaw(600))  # the caller goes on talking on the new stream
    await until(lambda: len(second.played) > heard + 10, within=10)
    await second.wait_quiet()
    await fake_twilio.hang_up(call)
    conv = await conversation(client, first.parameters["conversation_id"])
    texts = [i.live_transcript for i in conv.items]
    assert texts == ["press one for bookings",
                     "Pressing one for you. Done, you are in the bookings menu.", "thanks",
                     "Anything else?"]
    assert conv.items[1].tool_calls[0].tool.name == "keypad_input"
    assert conv.ended_by == "user"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


def _subscribe(server: LiveServer, receiver: WebhookReceiver, *events: str) -> None:
    """A webhook endpoint for ``events`` whose target is ``receiver``."""
    with httpx.Client(base_url=f"{server.url}/v1",
                      headers={"Authorization": f"Bearer {server.api_key}"}) as http:
        created = http.post("/webhook_endpoints", json={"url": receiver.url,
                                                        "events": list(events)})
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["secret"]


def _events(receiver: WebhookReceiver, kind: str) -> list[dict[str, Any]]:
    return [body for body in (json.loads(d.body) for d in receiver.ok())
            if body["event_type"] == kind]


async def test_an_answered_transfer_sends_the_signed_transferred_webhook(
        phone_server: PhoneServer, fake_twilio: FakeTwilio, receiver: WebhookReceiver) -> None:
    server = phone_server([_transfer_reply()], ["I have a billing question"], **FAST_JOBS)
    _subscribe(server, receiver, "conversation.transferred", "conversation.ended")
    await _transfer_tool(server)
    client = await phone_agent(server, tools=["transfer_to_billing"])
    call, _ = await fake_twilio.inbound(voice_url(server), CALLER, AGENT_NUMBER)
    stream = await call.stream()
    await stream.say(tone_mulaw(600))
    conv_id = stream.parameters["conversation_id"]
    conv = await conversation(client, conv_id)
    assert conv.ended_by == "transferred"
    await until(lambda: bool(_events(receiver, "conversation.ended")), within=15)
    assert all(d.valid for d in receiver.deliveries)  # signed with the endpoint's secret
    # Both Twilio signals (the leg's "answered" callback, then the <Dial action>) arrived:
    # the event went out once.
    [sent] = _events(receiver, "conversation.transferred")
    data = sent["data"]
    assert data["transferred_to"] == BILLING and data["conversation"]["id"] == conv_id
    assert {"role": "user", "text": "I have a billing question"} in data["conversation"]["items"]
    assert (data["call_info"]["from_phone_number"], data["call_info"]["to_phone_number"],
            data["call_info"]["twilio_call_sid"]) == (CALLER, AGENT_NUMBER, call.sid)
    [ended] = _events(receiver, "conversation.ended")
    assert ended["data"]["conversation"]["ended_by"] == "transferred"


async def test_keep_retrying_redials_until_the_number_answers(
        phone_server: PhoneServer, fake_twilio: FakeTwilio, receiver: WebhookReceiver) -> None:
    server = phone_server([_transfer_reply()], ["I have a billing question"], **FAST_JOBS)
    _subscribe(server, receiver, "conversation.transferred")
    await _transfer_tool(server, on_transfer_no_answer="keep_retrying")
    client = await phone_agent(server, tools=["transfer_to_billing"])
    fake_twilio.dial_answers[BILLING] = ["no-answer", "busy", "answered"]
    call, _ = await fake_twilio.inbound(voice_url(server), CALLER, AGENT_NUMBER)
    stream = await call.stream()
    await stream.say(tone_mulaw(600))
    conv = await conversation(client, stream.parameters["conversation_id"])
    assert conv.ended_by == "transferred"
    assert [d["number"] for d in call.dials] == [BILLING] * 3  # redialled twice
    assert all(d["sendDigits"] == "ww123#" and d["callerId"] == AGENT_NUMBER
               for d in call.dials)
    assert len(call.streams) == 1  # the caller never went back to the agent in between
    assert conv.metadata["twilio"]["transfer"] == {"to": BILLING, "status": "answered"}
    await until(lambda: bool(_events(receiver, "conversation.transferred")), within=15)
    [sent] = _events(receiver, "conversation.transferred")
    assert sent["data"]["transferred_to"] == BILLING


async def test_keep_retrying_gives_up_and_comes_back_to_the_agent(
        phone_server: PhoneServer, fake_twilio: FakeTwilio, receiver: WebhookReceiver) -> None:
    server = phone_server([_transfer_reply(), "Sorry, billing is not answering."],
                          ["I have a billing question"], **FAST_JOBS)
    _subscribe(server, receiver, "conversation.transferred", "conversation.ended")
    await _transfer_tool(server, on_transfer_no_answer="keep_retrying")
    client = await phone_agent(server, tools=["transfer_to_billing"])
    fake_twilio.dial_answers[BILLING] = "no-answer"
    call, _ = await fake_twilio.inbound(voice_url(server), CALLER, AGENT_NUMBER)
    first = await call.stream()
    await first.say(tone_mulaw(600))
    back = await call.wait_streams(2, within=20)
    assert len(call.dials) == 1 + TRANSFER_RETRIES
    await back.wait_quiet()
    await fake_twilio.hang_up(call)
    conv = await conversation(client, first.parameters["conversation_id"])
    assert conv.ended_by == "user"
    assert conv.items[-1].live_transcript == "Sorry, billing is not answering."
    assert conv.metadata["twilio"]["transfer"] == {"to": BILLING, "status": "no-answer"}
    await until(lambda: bool(_events(receiver, "conversation.ended")), within=15)
    assert _events(receiver, "conversation.transferred") == []  # never transferred
