"""``calls.create`` with ``customer.number``: an outbound phone call through the fake
Twilio (the phone number's ``provider`` picks the path), with its server-URL messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from vapi.errors import BadRequestError

from openline.providers.testing import FakeSTT, ScriptedLLM, ScriptedReply
from tests.conftest import LiveServer, fake_providers, start_server
from tests.telephony.conftest import AGENT_NUMBER, tone_mulaw
from tests.telephony.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, until
from tests.vapi.live.conftest import ServerUrl, sdk

CALLEE = "+15558880202"
GREETING = "Hello, this is the clinic calling."
BILLING = "+15559990000"


@pytest.fixture
async def fake_twilio() -> Any:
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def replies() -> list[ScriptedReply | str]:
    return ["Great, see you then."]


@pytest.fixture
def server(tmp_path: Path, fake_twilio: FakeTwilio, replies: list[ScriptedReply | str]
           ) -> Iterator[LiveServer]:
    providers = fake_providers(ScriptedLLM(replies), FakeSTT(["yes that works"] * 2))
    live = start_server(f"sqlite+aiosqlite:///{tmp_path / 'phone.db'}", tmp_path, providers,
                        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                        twilio_api_base=fake_twilio.url, job_poll_s=0.1)
    yield live
    live.stop()


async def _number(server: LiveServer, body: dict[str, Any]) -> str:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {server.api_key}"}) as h:
        r = await h.post(f"{server.url}/phone-number", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


async def test_an_outbound_call_goes_through_twilio(server: LiveServer, fake_twilio: FakeTwilio,
                                                   server_url: ServerUrl) -> None:
    number_id = await _number(server, {
        "provider": "twilio", "number": AGENT_NUMBER, "twilioAccountSid": ACCOUNT_SID,
        "twilioAuthToken": AUTH_TOKEN,
        "server": {"url": f"{server_url.url}/number", "secret": "number-secret"}})
    call = await sdk(server).calls.create(
        phone_number_id=number_id, customer={"number": CALLEE},
        assistant={"firstMessage": GREETING, "voice": {"provider": "vapi", "voiceId": "joe"},
                   "serverMessages": ["status-update", "transcript", "end-of-call-report"]})
    assert (call.type, call.status, call.phone_number_id) == (
        "outboundPhoneCall", "queued", number_id)
    placed = await fake_twilio.next_call()
    assert (placed.to, placed.from_) == (CALLEE, AGENT_NUMBER)
    stream = await placed.stream()
    await stream.wait_quiet()
    await stream.say(tone_mulaw(600))
    await until(lambda: any(r.message.get("role") == "assistant" and
                            r.message.get("transcript") == "Great, see you then."
                            for r in server_url.of("transcript")), within=15)
    await stream.wait_quiet()
    await fake_twilio.hang_up(placed)
    report = await server_url.wait_for("end-of-call-report", within=20)

    # No assistant server: the phone number's server gets the messages, with its secret.
    assert {r.path for r in server_url.received} == {"/number"}
    assert all(r.headers["x-vapi-secret"] == "number-secret" for r in server_url.received)
    statuses = [r.message["status"] for r in server_url.of("status-update")]
    assert statuses == ["in-progress", "ended"]
    user = [r.message["transcript"] for r in server_url.of("transcript")
            if r.message["role"] == "user"]
    assert user == ["yes that works"]
    reported = report.message["call"]
    assert reported["type"] == "outboundPhoneCall" and reported["id"] == call.id
    assert reported["phoneCallProvider"] == "twilio"
    assert reported["phoneCallProviderId"] == placed.sid
    assert report.message["endedReason"] == "customer-ended-call"
    assert report.message["artifact"]["transcript"].splitlines() == [
        f"AI: {GREETING}", "User: yes that works", "AI: Great, see you then."]
    assert report.message["customer"] == {"number": CALLEE}


async def test_a_sip_number_is_refused_until_the_sip_path_exists(server: LiveServer) -> None:
    number_id = await _number(server, {"provider": "vapi"})
    client = sdk(server)
    before = len(await client.calls.list())
    with pytest.raises(BadRequestError) as refused:
        await client.calls.create(phone_number_id=number_id, customer={"number": CALLEE},
                                  assistant={"firstMessage": GREETING})
    assert "SIP" in str(refused.value.body)
    assert len(await client.calls.list()) == before


@pytest.mark.parametrize("replies", [[ScriptedReply.call("transferCall")]])
async def test_transfer_destination_request_names_the_number(
        server: LiveServer, fake_twilio: FakeTwilio, server_url: ServerUrl) -> None:
    number_id = await _number(server, {"provider": "twilio", "number": AGENT_NUMBER,
                                       "twilioAccountSid": ACCOUNT_SID,
                                       "twilioAuthToken": AUTH_TOKEN})
    server_url.answers["transfer-destination-request"] = lambda m: {
        "destination": {"type": "number", "number": BILLING}}
    call = await sdk(server).calls.create(
        phone_number_id=number_id, customer={"number": CALLEE},
        assistant={"firstMessage": GREETING, "model": {
            "provider": "openai", "model": "gpt-4o", "tools": [{"type": "transferCall"}]},
            "server": {"url": f"{server_url.url}/events"}})
    placed = await fake_twilio.next_call()
    stream = await placed.stream()
    await stream.wait_quiet()
    await stream.say(tone_mulaw(600))
    await until(lambda: bool(placed.dials), within=15)
    assert placed.dials[0]["number"] == BILLING
    asked = server_url.of("transfer-destination-request")
    assert len(asked) == 1 and asked[0].message["call"]["id"] == call.id
    report = await server_url.wait_for("end-of-call-report", within=20)
    assert report.message["endedReason"] == "assistant-forwarded-call"


async def test_an_inbound_call_to_a_number_without_assistant_asks_the_server(
        server: LiveServer, fake_twilio: FakeTwilio, server_url: ServerUrl) -> None:
    number_id = await _number(server, {
        "provider": "twilio", "number": AGENT_NUMBER, "twilioAccountSid": ACCOUNT_SID,
        "twilioAuthToken": AUTH_TOKEN,
        "server": {"url": f"{server_url.url}/inbound", "secret": "in-secret"}})
    server_url.answers["assistant-request"] = lambda m: {
        "assistant": {"firstMessage": "Thanks for calling {{shop}}.",
                      "serverMessages": ["status-update", "end-of-call-report"]},
        "assistantOverrides": {"variableValues": {"shop": "Acme"}}}
    placed, twiml = await fake_twilio.inbound(f"{server.url}/twilio/voice", CALLEE,
                                              AGENT_NUMBER)
    assert "<Stream" in twiml.text
    stream = await placed.stream()
    await stream.wait_quiet()
    assert stream.played  # the chosen assistant's greeting
    await fake_twilio.hang_up(placed)
    report = await server_url.wait_for("end-of-call-report", within=20)
    [asked] = server_url.of("assistant-request")
    assert asked.headers["x-vapi-secret"] == "in-secret"
    assert asked.message["customer"] == {"number": CALLEE}
    assert asked.message["phoneNumber"]["id"] == number_id
    assert "twilioAuthToken" not in asked.message["phoneNumber"]
    assert asked.message["call"]["type"] == "inboundPhoneCall"
    assert report.message["call"]["type"] == "inboundPhoneCall"
    assert report.message["artifact"]["transcript"].startswith("AI: Thanks for calling Acme.")
    calls = await sdk(server).calls.list(phone_number_id=number_id)
    assert [c.type for c in calls] == ["inboundPhoneCall"]


async def test_an_assistant_request_error_is_said_to_the_caller(
        server: LiveServer, fake_twilio: FakeTwilio, server_url: ServerUrl) -> None:
    await _number(server, {"provider": "twilio", "number": AGENT_NUMBER,
                           "twilioAccountSid": ACCOUNT_SID, "twilioAuthToken": AUTH_TOKEN,
                           "server": {"url": f"{server_url.url}/inbound"}})
    server_url.answers["assistant-request"] = lambda m: {"error": "We are closed today."}
    _, twiml = await fake_twilio.inbound(f"{server.url}/twilio/voice", CALLEE, AGENT_NUMBER)
    assert "We are closed today." in twiml.text and "<Hangup" in twiml.text
    assert await sdk(server).calls.list() == []
