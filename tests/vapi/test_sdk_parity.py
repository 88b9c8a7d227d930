"""The endpoints each other test drives with one SDK flavour, driven with the other one:
async tools, squads, analytics and calls; sync phone numbers and files (both databases)."""

from __future__ import annotations

from tests.conftest import LiveServer
from tests.seed import seed_conversations
from vapi import AnalyticsOperation, AnalyticsQuery, AsyncVapi, Vapi


async def test_async_tools_squads_analytics(avapi: AsyncVapi) -> None:
    tool = await avapi.tools.create(request={"type": "endCall"})
    assert (await avapi.tools.get(tool.id)).type == "endCall"
    assert tool.id in [t.id for t in await avapi.tools.list(limit=1000.0) if t is not None]
    updated = await avapi.tools.update(tool.id, request={"type": "endCall", "messages": [
        {"type": "request-start", "content": "Goodbye"}]})
    assert updated.messages[0].content == "Goodbye"
    assert (await avapi.tools.delete(tool.id)).id == tool.id
    member = await avapi.assistants.create(name="Solo")
    squad = await avapi.squads.create(name="Solo squad", members=[{"assistantId": member.id}])
    assert (await avapi.squads.get(squad.id)).name == "Solo squad"
    assert squad.id in [s.id for s in await avapi.squads.list()]
    renamed = await avapi.squads.update(squad.id, name="Renamed",
                                        members=[{"assistantId": member.id}])
    assert renamed.name == "Renamed" and len(renamed.members) == 1
    assert (await avapi.squads.delete(squad.id)).id == squad.id
    await avapi.assistants.delete(member.id)
    results = await avapi.analytics.get(queries=[AnalyticsQuery(
        table="call", name="total", operations=[AnalyticsOperation(operation="count",
                                                                   column="id")])])
    assert results[0].name == "total" and isinstance(results[0].result[0]["countId"], int)


def test_sync_phone_numbers_files_and_calls(vapi: Vapi, live_server: LiveServer) -> None:
    number = vapi.phone_numbers.create(request={"provider": "vapi", "name": "Pool line"})
    assert number.number and vapi.phone_numbers.get(number.id).name == "Pool line"
    assert number.id in [n.id for n in vapi.phone_numbers.list() if n is not None]
    page = vapi.phone_numbers.phone_number_controller_find_all_paginated(
        search="pool LINE", limit=5.0)
    assert [n.id for n in page.results] == [number.id] and page.metadata.total_items == 1
    assert page.metadata.current_page == 1 and page.metadata.items_per_page == 5
    assert vapi.phone_numbers.update(number.id, request={"provider": "vapi",
                                                         "name": "Renamed"}).name == "Renamed"
    assert vapi.phone_numbers.delete(number.id).id == number.id
    made = vapi.files.create(file=("s.txt", b"sync", "text/plain"))
    assert made.id in [f.id for f in vapi.files.list()]
    assert vapi.files.delete(made.id).id == made.id
    assistant = vapi.assistants.create(name="Sync calls")
    (conv,) = seed_conversations(live_server.database_url, "main", [{"agent_id": assistant.id}])
    assert [c.id for c in vapi.calls.list(assistant_id=assistant.id)] == [conv]
    assert vapi.calls.delete(conv).id == conv
    vapi.assistants.delete(assistant.id)
