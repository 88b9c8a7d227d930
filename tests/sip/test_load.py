"""A bounded load smoke test: SIPp places 50 calls, 5 a second, at most 10 at once."""

from __future__ import annotations

from pathlib import Path

from tests.sip.conftest import AGENT_NUMBER, SipServerFactory, run_sipp


async def test_fifty_calls_ten_at_a_time(sip_server: SipServerFactory, tmp_path: Path) -> None:
    sip = sip_server()
    client = await sip.agent(welcome_message="Hello, thanks for calling.")
    run = await run_sipp("caller_short", tmp_path, sip.target, "-s", AGENT_NUMBER,
                         "-r", "5", "-l", "10", "-m", "50", fill={"talk_ms": "1500"},
                         limit_s=90)
    assert run.rc == 0, run.output[-3000:]
    assert len(run.received("SIP/2.0 200")) == 100  # each INVITE's and each BYE's
    stats = await sip.wait_stats(50, within=30)
    assert len({s.call_id for s in stats}) == 50
    assert all(s.tx_speech_packets > 0 for s in stats)  # every caller heard the greeting
    listed = []
    cursor = None
    while True:
        page = await client.conversations.list(limit=100, after=cursor) if cursor else \
            await client.conversations.list(limit=100)
        listed += page.conversations or []
        cursor = getattr(page.pagination, "next_cursor", None) if page.pagination else None
        if not cursor:
            break
    assert len(listed) == 50
