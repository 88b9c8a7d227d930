"""``/call`` list/get/update/delete through the Vapi SDK on both databases: a call is a
conversation; ``endedReason`` follows §5.2; DELETE carries a body."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from vapi.core.api_error import ApiError

from openline.services.vapi.call_view import ENDED_REASONS
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables_vapi import VapiResource
from tests.conftest import LiveServer
from tests.seed import seed_conversations
from vapi import AsyncVapi, Vapi


def _end(server: LiveServer, conv_id: str, ended_by: str, origin: str = "sdk-py",
         call_info: dict[str, str] | None = None) -> None:
    async def run() -> None:
        db = Database(server.database_url)
        try:
            async with db.session() as s:
                row = await s.get(t.Conversation, conv_id)
                assert row is not None
                if row.ended_at is None:
                    row.close(datetime.now(UTC), ended_by)
                row.ended_by, row.origin, row.call_info = ended_by, origin, call_info
        finally:
            await db.dispose()
    asyncio.run(run())


@pytest.fixture
def agent_id(vapi: Vapi) -> Iterator[str]:
    made = vapi.assistants.create(name="Caller", first_message="Hi").id
    yield made
    vapi.assistants.delete(made)


def test_calls_are_conversations(vapi: Vapi, raw: httpx.Client, live_server: LiveServer,
                                 agent_id: str) -> None:
    base = datetime.now(UTC) - timedelta(minutes=10)
    ids = seed_conversations(live_server.database_url, "main", [
        {"agent_id": agent_id, "agent_name": "caller", "started_at": base + timedelta(seconds=i)}
        for i in range(3)])
    _end(live_server, ids[1], "assistant_silence_limit_reached", "twilio",
         {"from_phone_number": "+15550001111", "to_phone_number": "+15550002222",
          "twilio_call_sid": "CA123"})
    call = vapi.calls.get(ids[0])
    assert call.id == ids[0] and call.org_id and call.assistant_id == agent_id
    assert call.status == "ended" and call.ended_reason == "customer-ended-call"
    assert call.type == "vapi.websocketCall" and call.created_at is not None
    assert call.artifact.transcript == "User: hi"
    assert [m.role for m in call.artifact.messages] == ["system", "user"]
    assert call.artifact.messages_open_ai_formatted[1].content == "hi"
    phone = vapi.calls.get(ids[1])
    assert phone.ended_reason == "silence-timed-out" and phone.type == "inboundPhoneCall"
    assert phone.phone_call_provider == "twilio" and phone.phone_call_provider_id == "CA123"
    assert phone.customer.number == "+15550001111"

    listed = vapi.calls.list(assistant_id=agent_id, limit=10.0)
    assert [c.id for c in listed] == ids[::-1]  # newest first
    assert [c.id for c in vapi.calls.list(id=ids[1])] == [ids[1]]
    at = vapi.calls.get(ids[1]).created_at.astimezone(timezone(timedelta(hours=-5)))
    assert [c.id for c in vapi.calls.list(assistant_id=agent_id, created_at_lt=at)] == [ids[0]]
    r = raw.get("/call", params={"assistantId": agent_id, "createdAtGe": at.isoformat(),
                                 "limit": "1.0"})
    assert [c["id"] for c in r.json()] == [ids[2]]
    assert vapi.calls.list(assistant_id=agent_id, updated_at_gt=datetime.now(UTC)) == []

    renamed = vapi.calls.update(ids[2], name="Renamed call")
    assert renamed.name == "Renamed call" and vapi.calls.get(ids[2]).name == "Renamed call"
    r = raw.patch(f"/call/{ids[2]}", json={"name": "x", "status": "ended"})
    assert r.status_code == 400 and vapi.calls.get(ids[2]).name == "Renamed call"

    gone = vapi.calls.delete(ids[0])  # the SDK sends {} as the body
    assert gone.id == ids[0] and gone.ended_reason == "customer-ended-call"
    with pytest.raises(ApiError) as missing:
        vapi.calls.get(ids[0])
    assert missing.value.status_code == 404
    r = raw.request("DELETE", f"/call/{ids[1]}", json={"ids": [ids[1], ids[2]]})
    assert r.status_code == 200 and r.json()["id"] == ids[1]
    assert vapi.calls.list(assistant_id=agent_id) == []
    assert raw.get(f"/v1/conversations/{ids[2]}").status_code == 404


async def test_live_calls_and_the_async_sdk(avapi: AsyncVapi, live_server: LiveServer,
                                            agent_id: str) -> None:
    live, done = await asyncio.to_thread(seed_conversations, live_server.database_url, "main", [
        {"agent_id": agent_id, "live": True, "leased": True}, {"agent_id": agent_id}])
    call = await avapi.calls.get(live)
    assert call.status == "in-progress" and call.ended_reason is None
    assert call.ended_at is None
    async with httpx.AsyncClient(base_url=live_server.url, headers={
            "Authorization": f"Bearer {live_server.api_key}"}) as raw:
        r = await raw.request("DELETE", f"/call/{done}", json={"ids": [done, live]})
        assert r.status_code == 400 and r.json()["statusCode"] == 400  # all or nothing
        assert (await avapi.calls.get(done)).id == done
        r = await raw.request("DELETE", f"/call/{done}", json={"ids": ["conv_missing"]})
        assert r.status_code == 404 and (await avapi.calls.get(done)).id == done
    assert [c.id for c in await avapi.calls.list(assistant_id=agent_id)] == [done, live]
    assert (await avapi.calls.update(done, name="Async")).name == "Async"
    assert (await avapi.calls.delete(done)).id == done
    await asyncio.to_thread(_end, live_server, live, "user")
    assert (await avapi.calls.delete(live)).id == live


def test_every_ended_by_has_a_vapi_ended_reason(vapi: Vapi, live_server: LiveServer,
                                                agent_id: str) -> None:
    cases = {**ENDED_REASONS, "call_failed": "twilio-failed-to-connect-call"}
    ids = seed_conversations(live_server.database_url, "main",
                             [{"agent_id": agent_id} for _ in cases])
    for conv_id, (ended_by, reason) in zip(ids, cases.items(), strict=True):
        _end(live_server, conv_id, ended_by, "twilio" if ended_by == "call_failed" else "sdk-py")
        assert vapi.calls.get(conv_id).ended_reason == reason, ended_by
    assert ENDED_REASONS["user"] == "customer-ended-call"
    assert ENDED_REASONS["voicemail"] == "voicemail"
    for conv_id in ids:
        vapi.calls.delete(conv_id)


def _call_doc(server: LiveServer, conv_id: str, doc: dict[str, object],
              phone_number_id: str) -> None:
    """The document ``POST /call`` stores for a call (``phoneNumberId`` as its link)."""
    async def run() -> None:
        db = Database(server.database_url)
        try:
            async with db.session() as s:
                row = await s.get(t.Conversation, conv_id)
                assert row is not None
                s.add(VapiResource(id=conv_id, workspace_id=row.workspace_id, kind="call",
                                   doc=doc, link_id=phone_number_id))
        finally:
            await db.dispose()
    asyncio.run(run())


def test_phone_number_filter_and_the_stored_call_document(
        vapi: Vapi, live_server: LiveServer, agent_id: str) -> None:
    first, second = seed_conversations(live_server.database_url, "main",
                                       [{"agent_id": agent_id}, {"agent_id": agent_id}])
    _call_doc(live_server, first, {"type": "outboundPhoneCall", "name": "Reminder",
                                   "customer": {"number": "+15550100100"},
                                   "phoneNumberId": "pn-1", "status": "ended",
                                   "analysis": {"successEvaluation": "true"}}, "pn-1")
    assert [c.id for c in vapi.calls.list(phone_number_id="pn-1")] == [first]
    call = vapi.calls.get(first)
    assert (call.type, call.name, call.customer.number) == (
        "outboundPhoneCall", "Reminder", "+15550100100")
    assert call.analysis.success_evaluation == "true" and call.phone_number_id == "pn-1"
    assert vapi.calls.get(second).type == "vapi.websocketCall"
    for conv_id in (first, second):
        vapi.calls.delete(conv_id)
    assert vapi.calls.list(phone_number_id="pn-1") == []
