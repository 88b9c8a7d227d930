"""Outbound SIP calls through the official SDK's ``conversations.sip_outbound_call``, with
SIPp as a strict trunk: the digest challenge, in-dialog requests to the trunk's Contact,
media echoed back (our audio and our RFC 4733 digit), and each way a dial fails."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from phonic.core.api_error import ApiError

from openline.providers.llm.base import ToolCall
from openline.providers.testing import ScriptedReply
from tests.sip.conftest import (
    AGENT_NUMBER,
    SipServer,
    SipServerFactory,
    conversation,
    free_udp_port,
    run_sipp,
    until,
)

CALLEE = "+15551230000"
PRESS_5 = ScriptedReply("", (ToolCall("k1", "keypad_input", '{"digits": "5"}'),))


async def _trunk(scenario: str, tmp: Path, **fill: str) -> tuple[int, asyncio.Task[Any]]:
    port = free_udp_port()
    task = asyncio.create_task(run_sipp(scenario, tmp, None, "-rtp_echo", "-m", "1",
                                        port=port, fill=fill))
    await asyncio.sleep(0.4)  # SIPp binds its socket
    return port, task


async def _dial(sip: SipServer, port: int, **extra: Any) -> Any:
    return await sip.client().conversations.sip_outbound_call(
        sip_address=f"127.0.0.1:{port}", from_phone_number=AGENT_NUMBER,
        to_phone_number=CALLEE, config={"agent": "front-desk"}, **extra)


def _live_stats(sip: SipServer) -> list[Any]:
    return [c.transport.stats for c in list(sip.service.calls.values()) if c.transport]


async def test_outbound_call_through_a_strict_trunk(sip_server: SipServerFactory,
                                                    tmp_path: Path) -> None:
    sip = sip_server([PRESS_5] * 6)
    client = await sip.agent(welcome_message="Hello, this is the front desk calling.",
                             tools=["keypad_input"])
    port, trunk = await _trunk("trunk_strict", tmp_path, user="agent", password="s3cret",
                               in_dialog="")
    placed = await _dial(sip, port, sip_auth_username="agent", sip_auth_password="s3cret",
                         from_display_name="Front Desk")
    assert placed.conversation_id and placed.dry_run is False
    # Our audio comes back from the trunk's echo, and so does the digit we pressed.
    await until(lambda: any(s.rx_frames > 25 and "5" in s.dtmf_in
                            for s in _live_stats(sip)), within=15)
    await client.conversations.cancel(placed.conversation_id)
    run = await trunk
    assert run.rc == 0, run.output[-3000:]
    acks = run.received("ACK")
    assert acks[0].startswith(f"ACK sip:{CALLEE}@127.0.0.1:{port}")  # the 401's, as sent
    assert acks[1].startswith("ACK sip:trunk@127.0.0.1")  # the 2xx's, to the Contact
    invites = run.received("INVITE")
    assert 'From: "Front Desk" <sip:' in invites[0] and "Authorization: Digest" in invites[1]
    conv = await conversation(client, placed.conversation_id)
    assert conv.origin == "sip" and conv.ended_by == "user_canceled"
    assert (conv.call_info.from_phone_number, conv.call_info.to_phone_number) == (
        AGENT_NUMBER, CALLEE)
    assert conv.metadata["sip"]["call"]["direction"] == "outbound"
    stats = (await sip.wait_stats())[0]
    assert set(stats.dtmf_out) == {"5"} and set(stats.dtmf_in) == {"5"}
    assert stats.tx_speech_packets >= 10  # its own echo may cut the greeting short


async def test_a_wrong_password_is_an_auth_error(sip_server: SipServerFactory,
                                                 tmp_path: Path) -> None:
    sip = sip_server()
    client = await sip.agent()
    port, trunk = await _trunk("trunk_strict", tmp_path, user="agent", password="s3cret",
                               in_dialog="")
    with pytest.raises(ApiError) as raised:
        await _dial(sip, port, sip_auth_username="agent", sip_auth_password="wrong")
    assert raised.value.status_code == 400
    assert raised.value.body["error"] == {
        "message": "The SIP trunk refused the credentials.", "code": "sip_auth_failed",
        "sip_status_code": 403, "sip_status": "Forbidden"}
    run = await trunk
    assert run.rc == 0, run.output[-3000:]  # the 403 was ACKed too
    (listed,) = (await client.conversations.list()).conversations or []
    assert (await conversation(client, listed.id)).ended_by == "call_failed"


@pytest.mark.parametrize(("status", "reason", "http", "code", "ended_by"), [
    ("486", "Busy Here", 409, "sip_call_failed", "call_busy"),
    ("404", "Not Found", 400, "invalid_phone_number", "call_failed"),
    ("503", "Service Unavailable", 409, "sip_call_failed", "call_failed"),
])
async def test_failed_dials(sip_server: SipServerFactory, tmp_path: Path, status: str,
                            reason: str, http: int, code: str, ended_by: str) -> None:
    sip = sip_server()
    client = await sip.agent()
    port, trunk = await _trunk("trunk_status", tmp_path, status=status, reason=reason)
    with pytest.raises(ApiError) as raised:
        # The SDK retries a 409 twice with the same body: those get the remembered answer.
        await _dial(sip, port)
    assert raised.value.status_code == http
    assert raised.value.body["error"]["code"] == code
    assert raised.value.body["error"]["sip_status_code"] == int(status)
    assert raised.value.body["error"]["sip_status"] == reason
    run = await trunk
    assert run.rc == 0, run.output[-3000:]
    assert len(run.received("INVITE")) == 1
    (listed,) = (await client.conversations.list()).conversations or []  # dialled once
    assert (await conversation(client, listed.id)).ended_by == ended_by


async def test_no_answer_is_cancelled(sip_server: SipServerFactory, tmp_path: Path) -> None:
    sip = sip_server(sip_ring_timeout_s=1.5)
    client = await sip.agent()
    port, trunk = await _trunk("trunk_no_answer", tmp_path)
    with pytest.raises(ApiError) as raised:
        await _dial(sip, port, request_options={"max_retries": 0})
    assert raised.value.status_code == 409
    assert raised.value.body["error"]["sip_status_code"] == 408
    run = await trunk
    assert run.rc == 0, run.output[-3000:]  # CANCEL sent, the 487 ACKed
    (listed,) = (await client.conversations.list()).conversations or []
    assert (await conversation(client, listed.id)).ended_by == "call_no_answer"


async def test_dry_run_and_missing_address(sip_server: SipServerFactory) -> None:
    sip = sip_server()
    client = await sip.agent()
    dry = await _dial(sip, 5099, dry_run=True)
    assert dry.conversation_id is None and dry.dry_run is True
    with pytest.raises(ApiError) as raised:
        await client.conversations.sip_outbound_call(
            sip_address="", from_phone_number=AGENT_NUMBER, to_phone_number=CALLEE)
    assert raised.value.status_code == 400
    with pytest.raises(ApiError) as injected:  # the display name goes into a SIP header
        await _dial(sip, 5099, from_display_name="Desk\r\nX-Evil: 1")
    assert injected.value.status_code == 400
    assert "from_display_name" in injected.value.body["param_errors"]
    assert (await client.conversations.list()).conversations in ([], None)


async def test_outbound_call_for_an_agent_with_a_sip_number(sip_server: SipServerFactory,
                                                            tmp_path: Path) -> None:
    sip = sip_server()
    port, trunk = await _trunk("trunk_strict", tmp_path, user="agent", password="s3cret",
                               in_dialog="")
    client = sip.client()
    await client.agents.create(name="front-desk", phone_number=None, voice_id="joe")
    await client.agents.add_custom_phone_number(
        "front-desk", phone_number="+15550003333", sip_address=f"127.0.0.1:{port}",
        sip_auth_username="agent", sip_auth_password="s3cret")
    placed = await client.conversations.outbound_call(to_phone_number=CALLEE,
                                                      config={"agent": "front-desk"})
    assert placed.conversation_id
    await until(lambda: any(s.rx_frames > 10 for s in _live_stats(sip)))
    await client.conversations.cancel(placed.conversation_id)
    run = await trunk
    assert run.rc == 0, run.output[-3000:]
    assert "From: <sip:+15550003333@" in run.received("INVITE")[0]
    conv = await conversation(client, placed.conversation_id)
    assert conv.origin == "sip" and conv.call_info.from_phone_number == "+15550003333"


async def test_cancelling_a_ringing_call_sends_cancel(sip_server: SipServerFactory,
                                                      tmp_path: Path) -> None:
    sip = sip_server()  # the ring timeout (30 s) is far away
    client = await sip.agent()
    port, trunk = await _trunk("trunk_no_answer", tmp_path)
    dial = asyncio.create_task(_dial(sip, port, request_options={"max_retries": 0}))
    await until(lambda: bool(sip.service.calls))
    (ringing,) = list(sip.service.calls.values())
    await client.conversations.cancel(ringing.conversation_id)
    with pytest.raises(ApiError) as raised:
        await asyncio.wait_for(dial, 10)
    assert raised.value.status_code == 409
    assert raised.value.body["error"]["sip_status_code"] == 487
    run = await trunk
    assert run.rc == 0, run.output[-3000:]  # CANCEL, then the 487 ACKed
    conv = await conversation(client, ringing.conversation_id)
    assert conv.ended_by == "user_canceled"
