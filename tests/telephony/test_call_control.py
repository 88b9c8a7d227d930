"""Call control over the fake Twilio: transfer to a number (answered, not answered and
back to the agent) and keypad tones to the far end (a new stream for the same call)."""

from __future__ import annotations

from openline.providers.llm.base import ToolCall
from openline.providers.testing import ScriptedReply
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
    assert len(second.played) >= len("Done, you are in the bookings menu.") - 2
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
