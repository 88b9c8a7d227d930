"""Inbound SIP calls from SIPp: a spoken call with a digit, answered as the agent."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.sip.conftest import (
    AGENT_NUMBER,
    CALLER,
    SipServerFactory,
    conversation,
    only_conversation,
    run_sipp,
    until,
    write_fixture,
)

WELCOME = "Thanks for calling the front desk."
DTMF_7 = "/usr/share/sip-tester/dtmf_2833_7.pcap"


async def test_inbound_call_with_speech_and_a_digit(sip_server: SipServerFactory,
                                                    speech_ulaw: bytes,
                                                    tmp_path: Path) -> None:
    sip = sip_server(heard="I would like to book an appointment", reply="Sure, noted.")
    client = await sip.agent(welcome_message=WELCOME)
    speech = write_fixture(tmp_path, speech_ulaw)
    run = await run_sipp("caller_speech", tmp_path, sip.target, "-s", AGENT_NUMBER,
                         "-m", "1", fill={"speech": str(speech), "dtmf_pcap": DTMF_7})
    assert run.rc == 0, run.output[-3000:]
    # What SIPp saw: 180 then 200 with our SDP answer (PCMU, telephone-event, c=).
    assert run.received("SIP/2.0 180")
    ok = next(m for m in run.received("SIP/2.0 200") if "CSeq: 1 INVITE" in m)
    assert "m=audio" in ok and "RTP/AVP 0 101" in ok and "c=IN IP4 127.0.0.1" in ok
    assert "a=rtpmap:101 telephone-event/8000" in ok
    assert len(run.received("SIP/2.0 200")) == 2  # the INVITE's and the BYE's

    conv = await only_conversation(client)
    assert conv.origin == "sip" and conv.ended_by == "user"
    assert conv.call_info.from_phone_number == CALLER
    assert conv.call_info.to_phone_number == AGENT_NUMBER
    assert conv.call_info.sip_headers == {"X-Tenant": "demo"}
    roles = [(i.role, i.live_transcript) for i in conv.items]
    assert ("user", "I would like to book an appointment") in roles
    assert ("user", "The caller pressed 7.") in roles
    assert roles[0][0] == "assistant" and roles[-1] == ("assistant", "Sure, noted.")
    assert conv.metadata["sip"]["call"]["codec"] == "PCMU"

    stats = (await sip.wait_stats())[0]
    assert stats.dtmf_in == ["7"]  # one event, reported once
    # Bit-exact: every frame SIPp streamed arrived, in order, from the first one (RTP
    # was bound before the 200 OK).
    frames = [speech_ulaw[i:i + 160] for i in range(0, len(speech_ulaw) - 159, 160)]
    assert stats.rx_payloads[:len(frames)] == frames
    # The agent spoke: paced packets that carried its speech reached SIPp's port.
    assert stats.tx_speech_packets >= 10
    assert stats.tx_packets >= 250  # ~20 ms apart for the whole call (about 7 s)
    # The record keeps what the media did (written once the call is over).
    media = (await conversation(client, conv.id)).metadata["sip"]["media"]
    assert media["rx_frames"] == stats.rx_frames and media["tx_speech_packets"] > 0
    assert media["pacing_late_ms"]["p50"] < 20  # generous: the machine is shared


async def test_hanging_up_from_openline_sends_bye(sip_server: SipServerFactory,
                                                  tmp_path: Path) -> None:
    sip = sip_server()
    client = await sip.agent(welcome_message=WELCOME)
    caller = asyncio.create_task(run_sipp("caller_hung_up_on", tmp_path, sip.target, "-s",
                                          AGENT_NUMBER, "-m", "1"))
    await until(lambda: any(c.transport for c in list(sip.service.calls.values())))
    (call,) = list(sip.service.calls.values())
    await client.conversations.cancel(call.conversation_id)
    run = await caller
    assert run.rc == 0, run.output[-3000:]  # the BYE came, to the caller's Contact
    conv = await conversation(client, call.conversation_id)
    assert conv.ended_by == "user_canceled"
