"""``calls.create`` with ``customer.number`` from a ``byo-phone-number``: the official Vapi SDK
dials through Openline's SIP endpoint to the number's ``sipUri``, SIPp as the strict trunk
(digest challenge, RTP echo); the call is a stored Vapi call with its ``endedReason``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from vapi.errors import BadRequestError

from openline.providers.testing import ScriptedReply
from tests.conftest import LiveServer
from tests.sip.conftest import (  # noqa: F401  (sip_server is the fixture)
    AGENT_NUMBER,
    SipServer,
    SipServerFactory,
    free_udp_port,
    only_conversation,
    run_sipp,
    sip_server,
    until,
)
from tests.sip.test_transfer import SORRY, _tone
from tests.vapi.live.conftest import ServerUrl, sdk

CALLEE = "+15558880303"
GREETING = "Hello, this is the clinic calling."
BILLING = "+15554440000"


async def _trunk(tmp: Path, in_dialog: str = "") -> tuple[int, asyncio.Task[Any]]:
    port = free_udp_port()
    task = asyncio.create_task(run_sipp("trunk_strict", tmp, None, "-rtp_echo", "-m", "1",
                                        port=port, fill={"user": "agent", "password": "s3cret",
                                                         "in_dialog": in_dialog}))
    await asyncio.sleep(0.4)  # SIPp binds its socket
    return port, task


async def _number(server: LiveServer, port: int, password: str = "s3cret",
                  **extra: Any) -> str:
    body = {"provider": "byo-phone-number", "number": AGENT_NUMBER, "credentialId": "cred-1",
            "sipUri": f"sip:127.0.0.1:{port}",
            "authentication": {"username": "agent", "password": password}, **extra}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {server.api_key}"}) as h:
        r = await h.post(f"{server.url}/phone-number", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _rx(sip: SipServer) -> int:
    return max((c.transport.stats.rx_frames for c in list(sip.service.calls.values())
                if c.transport), default=0)


async def test_an_outbound_call_dials_the_byo_trunk(sip_server: SipServerFactory,  # noqa: F811
                                                    tmp_path: Path,
                                                    server_url: ServerUrl) -> None:
    sip = sip_server()
    port, trunk = await _trunk(tmp_path)
    number_id = await _number(sip.server, port)
    client = sdk(sip.server)
    call = await client.calls.create(
        phone_number_id=number_id, customer={"number": CALLEE},
        assistant={"firstMessage": GREETING, "voice": {"provider": "vapi", "voiceId": "joe"},
                   "server": {"url": f"{server_url.url}/events"},
                   "serverMessages": ["status-update", "end-of-call-report"]})
    assert (call.type, call.status, call.phone_number_id) == (
        "outboundPhoneCall", "queued", number_id)
    await until(lambda: _rx(sip) > 25, within=15)  # our greeting came back from the echo
    async with httpx.AsyncClient() as http:
        ended = await http.post(call.monitor.control_url,  # type: ignore[union-attr]
                                json={"type": "end-call"})
    assert ended.status_code == 200, ended.text
    run = await trunk
    assert run.rc == 0, run.output[-3000:]  # digest checked, ACK and BYE to its Contact
    invites = run.received("INVITE")
    assert invites[0].startswith(f"INVITE sip:{CALLEE}@127.0.0.1:{port}")
    assert f"<sip:{AGENT_NUMBER}@" in invites[0]
    assert 'Digest username="agent"' in invites[1]
    report = await server_url.wait_for("end-of-call-report", within=20)
    assert report.message["endedReason"] == "manually-canceled"
    assert report.message["call"]["id"] == call.id
    stored = await client.calls.get(call.id)
    assert (stored.type, stored.status, stored.ended_reason) == (
        "outboundPhoneCall", "ended", "manually-canceled")
    assert stored.customer is not None and stored.customer.number == CALLEE
    assert (await sip.wait_stats())[0].tx_speech_packets >= 10


async def test_a_refused_trunk_login_ends_the_call(sip_server: SipServerFactory,  # noqa: F811
                                                   tmp_path: Path) -> None:
    sip = sip_server()
    port, trunk = await _trunk(tmp_path)
    number_id = await _number(sip.server, port, password="wrong")
    client = sdk(sip.server)
    # As with Vapi, the call is created queued; the failed dial is its endedReason.
    call = await client.calls.create(phone_number_id=number_id, customer={"number": CALLEE},
                                     assistant={"firstMessage": GREETING})
    assert (call.type, call.status) == ("outboundPhoneCall", "queued")
    run = await trunk
    assert run.rc == 0, run.output[-3000:]  # the 403 was ACKed
    assert len(run.received("INVITE")) == 2  # the challenged one and the one with digest
    async with asyncio.timeout(15):
        while (failed := await client.calls.get(call.id)).status != "ended":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert failed.type == "outboundPhoneCall"
    assert failed.ended_reason == "call.in-progress.error-sip-outbound-call-failed-to-connect"
    assert [c.id for c in await client.calls.list()] == [call.id]


async def test_a_byo_number_without_sip_uri_is_refused(sip_server: SipServerFactory  # noqa: F811
                                                       ) -> None:
    sip = sip_server()
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {sip.server.api_key}"}) as h:
        r = await h.post(f"{sip.server.url}/phone-number", json={
            "provider": "byo-phone-number", "number": AGENT_NUMBER, "credentialId": "cred-1"})
        assert r.status_code == 201, r.text
    client = sdk(sip.server)
    with pytest.raises(BadRequestError) as refused:
        await client.calls.create(phone_number_id=r.json()["id"], customer={"number": CALLEE},
                                  assistant={"firstMessage": GREETING})
    assert "sipUri" in str(refused.value.body)
    assert await client.calls.list() == []


#: the answered trunk speaks (a tone), then refuses the agent's REFER
REFUSE_REFER = """
  <nop><action><exec rtp_stream="{speech},1,0"/></action></nop>
  <recv request="REFER">
    <action>
      <ereg regexp="sip:\\+15554440000@[^>]+" search_in="hdr" header="Refer-To:"
            check_it="true" assign_to="refer_to"/>
    </action>
  </recv>
  <send>
    <![CDATA[

      SIP/2.0 603 Decline
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <Reference variables="refer_to"/>
"""


async def test_a_transfer_the_trunk_refuses_is_the_tools_error(
        sip_server: SipServerFactory, tmp_path: Path, server_url: ServerUrl  # noqa: F811
        ) -> None:
    """The outbound call's ``transferCall`` asks the server for the destination; the trunk
    refuses the REFER (603): the tool's error says so, with the SIP status."""
    sip = sip_server([ScriptedReply.call("transferCall")], reply=SORRY)
    server_url.answers["transfer-destination-request"] = lambda m: {
        "destination": {"type": "number", "number": BILLING}}
    port, trunk = await _trunk(tmp_path, REFUSE_REFER.format(speech=_tone(tmp_path)))
    number_id = await _number(sip.server, port)
    call = await sdk(sip.server).calls.create(
        phone_number_id=number_id, customer={"number": CALLEE},
        assistant={"firstMessageMode": "assistant-waits-for-user",
                   "model": {"provider": "openai", "model": "gpt-4o",
                             "tools": [{"type": "transferCall"}]},
                   "server": {"url": f"{server_url.url}/events"}})
    await server_url.wait_for("transfer-destination-request", within=20)
    phonic = sip.client()

    async def refused() -> bool:
        meta = (await phonic.conversations.get(call.id)).conversation.metadata or {}
        return "refer" in meta.get("sip", {})

    async with asyncio.timeout(15):  # the REFER was answered (and noted)
        while not await refused():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    async with httpx.AsyncClient() as http:
        ended = await http.post(call.monitor.control_url,  # type: ignore[union-attr]
                                json={"type": "end-call"})
    assert ended.status_code == 200, ended.text
    run = await trunk
    assert run.rc == 0, run.output[-3000:]
    conv = await only_conversation(sip.client())  # type: ignore[arg-type]
    assert conv.metadata["sip"]["refer"]["status"] == 603
    # What the model was told the tool did: refused, with the SIP status.
    llm = sip.server.server.config.app.state.runtime.providers.llm  # type: ignore[attr-defined]
    told = [m.content for r in llm.requests for m in r.messages if m.role == "tool"]
    assert told and "refused by the far end (SIP 603 Decline)" in str(told[-1]), told
    assert len(server_url.of("transfer-destination-request")) == 1
