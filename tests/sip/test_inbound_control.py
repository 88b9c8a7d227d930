"""Inbound SIP requests other than a plain call: OPTIONS, refusals (404, 488), CANCEL while
ringing, a PCMA-only caller, hold, and who may call at all (allow-list, digest)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.sip.conftest import (
    AGENT_NUMBER,
    CALLER,
    SipServerFactory,
    conversation,
    only_conversation,
    run_sipp,
)

G729 = """      m=audio [media_port] RTP/AVP 18
      a=rtpmap:18 G729/8000"""
PCMU = """      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000"""


async def test_options_unknown_number_unsupported_codec_disabled_agent(sip_server: SipServerFactory,
                                                            tmp_path: Path) -> None:
    sip = sip_server()
    client = await sip.agent()
    options = await run_sipp("options", tmp_path, sip.target, "-s", AGENT_NUMBER, "-m", "1")
    assert options.rc == 0, options.output[-2000:]
    (ok,) = options.received("SIP/2.0 200")
    assert "Allow:" in ok and "INVITE" in ok
    unknown = await run_sipp("invite_refused", tmp_path, sip.target, "-s", "+15559990000",
                             "-m", "1", fill={"status": "404", "media": PCMU})
    assert unknown.rc == 0, unknown.output[-2000:]
    g729 = await run_sipp("invite_refused", tmp_path, sip.target, "-s", AGENT_NUMBER,
                          "-m", "1", fill={"status": "488", "media": G729})
    assert g729.rc == 0, g729.output[-2000:]
    # inbound_rollout 0: every call goes to the forward number (302 with its Contact).
    await sip.agent(name="overflow", number="+15550004444", inbound_rollout=0.0,
                    inbound_rollout_forward_phone_number="+15556667777")
    moved = await run_sipp("invite_refused", tmp_path, sip.target, "-s", "+15550004444",
                           "-m", "1", fill={"status": "302", "media": PCMU})
    assert moved.rc == 0, moved.output[-2000:]
    (redirect,) = moved.received("SIP/2.0 302")
    assert "Contact: <sip:+15556667777@127.0.0.1:" in redirect
    await client.agents.disable("front-desk")
    disabled = await run_sipp("invite_refused", tmp_path, sip.target, "-s", AGENT_NUMBER,
                              "-m", "1", fill={"status": "480", "media": PCMU})
    assert disabled.rc == 0, disabled.output[-2000:]
    # Nothing was answered, so nothing was stored.
    assert (await client.conversations.list()).conversations in ([], None)


class SlowConfig:
    """A configuration endpoint that answers after ``delay_s`` (the call rings)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s, self.calls = delay_s, 0
        self.bodies: list[dict[str, object]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.bodies.append(await request.json())
        await asyncio.sleep(self.delay_s)
        return web.json_response({})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/config", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/config"


@pytest.fixture
async def slow_config() -> AsyncIterator[SlowConfig]:
    endpoint = SlowConfig(1.5)
    await endpoint.start()
    yield endpoint
    assert endpoint.runner is not None
    await endpoint.runner.cleanup()


async def test_cancel_while_ringing(sip_server: SipServerFactory, slow_config: SlowConfig,
                                    tmp_path: Path) -> None:
    sip = sip_server()
    client = await sip.agent(configuration_endpoint={"url": slow_config.url,
                                                     "timeout_ms": 5000})
    run = await run_sipp("cancel", tmp_path, sip.target, "-s", AGENT_NUMBER, "-m", "1")
    assert run.rc == 0, run.output[-2000:]
    assert run.received("SIP/2.0 487") and run.sent("ACK")
    conv = await only_conversation(client)
    assert conv.ended_by == "call_canceled" and conv.items == []
    assert slow_config.calls == 1
    (asked,) = slow_config.bodies  # call_info and the INVITE's X- headers
    assert (asked["from_phone_number"], asked["to_phone_number"]) == (CALLER, AGENT_NUMBER)
    assert asked["sip_headers"] == {"X-Tenant": "demo"}
    assert sip.stats == []  # no media ever ran


async def test_pcma_only_caller(sip_server: SipServerFactory, tmp_path: Path) -> None:
    sip = sip_server(heard="some speech")
    client = await sip.agent(welcome_message="Hello there.")
    run = await run_sipp("caller_pcma", tmp_path, sip.target, "-s", AGENT_NUMBER, "-m", "1")
    assert run.rc == 0, run.output[-2000:]
    ok = next(m for m in run.received("SIP/2.0 200") if "CSeq: 1 INVITE" in m)
    assert "RTP/AVP 8 101" in ok and "a=rtpmap:8 PCMA/8000" in ok
    conv = await only_conversation(client)
    assert conv.metadata["sip"]["call"]["codec"] == "PCMA"
    assert ("user", "The caller pressed 1.") in [(i.role, i.live_transcript)
                                                 for i in conv.items]
    stats = (await sip.wait_stats())[0]
    assert stats.codec == "PCMA" and stats.dtmf_in == ["1"]
    assert stats.rx_frames >= 200  # the packaged pcap: 236 packets of 30 ms


async def test_hold_is_answered_recvonly(sip_server: SipServerFactory, tmp_path: Path) -> None:
    sip = sip_server()
    client = await sip.agent()
    run = await run_sipp("hold", tmp_path, sip.target, "-s", AGENT_NUMBER, "-m", "1")
    assert run.rc == 0, run.output[-2000:]
    oks = [m for m in run.received("SIP/2.0 200") if "CSeq: 2 INVITE" in m]
    assert oks and "a=recvonly" in oks[0]
    conv = await only_conversation(client)
    assert conv.metadata["sip"]["hold"] is True and conv.ended_by == "user"


async def test_digest_for_sources_not_on_the_allow_list(sip_server: SipServerFactory,
                                                        tmp_path: Path) -> None:
    sip = sip_server(sip_allow="10.9.0.0/16", sip_inbound_username="trunk",
                     sip_inbound_password="s3cret")
    client = await sip.agent()
    good = await run_sipp("caller_auth", tmp_path, sip.target, "-s", AGENT_NUMBER, "-m", "1",
                          fill={"user": "trunk", "password": "s3cret"})
    assert good.rc == 0, good.output[-2000:]
    (challenge,) = good.received("SIP/2.0 401")
    assert 'WWW-Authenticate: Digest realm="openline"' in challenge and 'qop="auth"' in challenge
    conv = await only_conversation(client)
    assert conv.ended_by == "user"
    bad = await run_sipp("caller_auth_refused", tmp_path, sip.target, "-s", AGENT_NUMBER,
                         "-m", "1", fill={"user": "trunk", "password": "wrong"})
    assert bad.rc == 0, bad.output[-2000:]
    assert len((await client.conversations.list()).conversations or []) == 1


async def test_unlisted_sources_are_refused_except_a_numbers_own_trunk(
        sip_server: SipServerFactory, tmp_path: Path) -> None:
    sip = sip_server(sip_allow="10.9.0.0/16")
    client = await sip.agent()
    refused = await run_sipp("invite_refused", tmp_path, sip.target, "-s", AGENT_NUMBER,
                             "-m", "1", fill={"status": "403", "media": PCMU})
    assert refused.rc == 0, refused.output[-2000:]
    # A custom number whose trunk is this address: its calls are answered.
    trunk_number = "+15550002222"
    await client.agents.add_custom_phone_number(
        "front-desk", phone_number=trunk_number, sip_address="127.0.0.1:5099",
        sip_auth_username="agent", sip_auth_password="s3cret")
    run = await run_sipp("hold", tmp_path, sip.target, "-s", trunk_number, "-m", "1")
    assert run.rc == 0, run.output[-2000:]
    listed = (await client.conversations.list()).conversations or []
    assert len(listed) == 1
    conv = await conversation(client, listed[0].id)
    assert conv.call_info.to_phone_number == trunk_number
