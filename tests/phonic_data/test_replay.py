"""Replay through the official SDK: a stored call replayed against a changed prompt, the
alternative responses of one assistant turn, and every refusal the spec documents."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from phonic import AsyncPhonic
from phonic.core.api_error import ApiError
from phonic.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    TooManyRequestsError,
    UnprocessableEntityError,
)

from tests.phonic_data.conftest import (
    NO_RETRY,
    ServerFactory,
    error_of,
    one_turn,
    sdk,
    wait_ended,
)
from tests.postcall.seeding import aseed


async def _replayed(client: AsyncPhonic, original: str, within: float = 30.0) -> Any:
    """The ended replay conversation started from ``original``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        listing = await client.conversations.list(limit=50)
        replays = [c for c in listing.conversations or [] if c.origin == "replay"]
        if replays:
            return await wait_ended(client, replays[0].id)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no replay of {original} appeared")


def _assistant_turns(conversation: Any) -> list[str]:
    return [i.live_transcript for i in conversation.items if i.role == "assistant"]


async def test_replay_against_a_changed_prompt(make_server: ServerFactory) -> None:
    server = make_server()
    client = sdk(server)
    await client.agents.create(name="host", system_prompt="You are Ann. Be brief.")
    original_id = await one_turn(client, "host")
    original = (await client.conversations.get(original_id)).conversation
    assert _assistant_turns(original) == ["As You are Ann, I can help."]

    await client.agents.update("host", system_prompt="You are Bob. Be brief.")
    answer = await client.conversations.replay(original_id)
    assert answer.message == "Replay started"
    replay = await _replayed(client, original_id)

    assert replay.origin == "replay" and replay.id != original_id
    assert replay.agent.name == "host" and replay.ended_by == "user"
    # The same caller audio was heard again, and the new prompt answered it.
    assert [i.live_transcript for i in replay.items if i.role == "user"] == [
        "I need a table for two"]
    assert _assistant_turns(replay) == ["As You are Bob, I can help."]
    assert _assistant_turns(replay) != _assistant_turns(original)
    # In real time: the replay lasted at least as long as the caller's track (~0.7 s
    # speech, 1 s pause) and kept its own recording.
    assert replay.duration_ms >= 1500 and replay.audio_url


async def test_replay_with_another_agent_and_refusals(make_server: ServerFactory) -> None:
    server = make_server(max_concurrent_replays=1)
    client = sdk(server)
    await client.agents.create(name="host", system_prompt="You are Ann.")
    await client.agents.create(name="other", system_prompt="You are Zed.")
    ended = await one_turn(client, "host")

    async def while_live(live_id: str) -> None:
        with pytest.raises(ConflictError) as live:
            await client.conversations.replay(live_id, request_options=NO_RETRY)
        assert error_of(live.value)["message"] == "Cannot replay an active conversation"
        item = (await client.conversations.get(live_id)).conversation.items[-1]
        with pytest.raises(ConflictError):
            await client.conversation_items.replay(item.id, request_options=NO_RETRY)
        # One conversation is live: with a limit of one, a replay may not start.
        await client.projects.update("main", max_active_conversations=1)
        with pytest.raises(TooManyRequestsError) as busy:
            await client.conversations.replay(ended, request_options=NO_RETRY)
        assert error_of(busy.value)["code"] == "concurrency_limit_reached"
        await client.projects.update("main", max_active_conversations=100)

    await one_turn(client, "host", keep_open=while_live)
    assert not [c for c in (await client.conversations.list()).conversations or []
                if c.origin == "replay"]  # nothing started by the refused requests

    with pytest.raises(NotFoundError):
        await client.conversations.replay("conv_missing", request_options=NO_RETRY)
    with pytest.raises(NotFoundError):
        await client.conversations.replay(ended, agent="nobody", request_options=NO_RETRY)
    no_audio = await aseed(server.database_url)  # a stored call without a recording
    with pytest.raises(UnprocessableEntityError) as unplayable:
        await client.conversations.replay(no_audio, agent="host", request_options=NO_RETRY)
    assert "without audio" in error_of(unplayable.value)["message"]
    with pytest.raises(UnprocessableEntityError):  # no agent of its own, none named
        await client.conversations.replay(no_audio, request_options=NO_RETRY)

    await client.conversations.replay(ended, agent="other")
    with pytest.raises(ApiError) as full:  # one replay at a time here (503: untyped in SDK)
        await client.conversations.replay(ended, request_options=NO_RETRY)
    assert full.value.status_code == 503
    assert error_of(full.value)["code"] == "insufficient_capacity"
    replay = await _replayed(client, ended)
    assert replay.agent.name == "other"
    assert _assistant_turns(replay) == ["As You are Zed, I can help."]


async def test_item_replay_alternatives_and_tool_calls(make_server: ServerFactory) -> None:
    server = make_server()
    client = sdk(server)
    await client.tools.create(
        name="lookup_booking", description="Find a booking", type="custom_webhook",
        execution_mode="sync", endpoint_method="POST",
        endpoint_url="https://bookings.example.com/find",
        endpoint_headers={"Authorization": "Bearer secret-value"},
        parameters=[{"type": "string", "name": "name", "description": "Caller's name",
                     "location": "request_body", "is_required": True}])
    await client.agents.create(name="host", system_prompt="You are Ann.",
                               tools=["lookup_booking"])
    conv_id = await one_turn(client, "host")
    items = (await client.conversations.get(conv_id)).conversation.items
    user_item = next(i for i in items if i.role == "user")
    assistant_item = next(i for i in items if i.role == "assistant")

    same = await client.conversation_items.replay(assistant_item.id)
    assert [(r.text, r.tool_calls) for r in same.responses] == [
        ("As You are Ann, I can help.", [])]

    asked = server.llm.requests[-1]  # type: ignore[attr-defined]
    assert [(m.role, m.content) for m in asked.messages] == [
        ("system", "You are Ann."), ("user", "I need a table for two")]
    assert [tool.name for tool in asked.tools] == ["lookup_booking"]  # offered, not run

    changed = await client.conversation_items.replay(
        assistant_item.id, system_prompt="You are Cy. USE lookup_booking.", num_responses=3)
    assert len(changed.responses) == 3
    for response in changed.responses:
        assert response.text == "As You are Cy, I can help."
        call = response.tool_calls[0]
        assert call.tool.name == "lookup_booking" and call.tool.id.startswith("tool_")
        assert call.request_body == {"name": "Dana"}
        assert call.endpoint_url == "https://bookings.example.com/find"
        assert "secret-value" not in str(call.endpoint_headers)  # masked, never sent back

    with pytest.raises(UnprocessableEntityError):
        await client.conversation_items.replay(user_item.id, request_options=NO_RETRY)
    with pytest.raises(BadRequestError):
        await client.conversation_items.replay(assistant_item.id, num_responses=11)
    with pytest.raises(NotFoundError):
        await client.conversation_items.replay("item_missing")
    await client.agents.delete("host")
    with pytest.raises(UnprocessableEntityError) as orphan:
        await client.conversation_items.replay(assistant_item.id, request_options=NO_RETRY)
    assert "no associated agent" in error_of(orphan.value)["message"]


def test_item_history_keeps_tool_rounds() -> None:
    from openline.services.replay import _history
    from openline.store import tables as t

    call = {"id": "tool_call_1", "tool": {"id": "tool_1", "name": "lookup_booking"},
            "arguments": '{"name": "Dana"}', "response_body": {"found": True},
            "status": "completed"}
    items = [t.ConversationItem(item_idx=0, role="user", live_transcript="Find Dana"),
             t.ConversationItem(item_idx=1, role="assistant", live_transcript="Found it.",
                                tool_calls=[call]),
             t.ConversationItem(item_idx=2, role="user", live_transcript="Thanks",
                                post_call_transcript="Thanks!")]
    messages = _history(items)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Find Dana"), ("assistant", ""), ("tool", '{"found": true}'),
        ("assistant", "Found it."), ("user", "Thanks!")]
    assert messages[1].tool_calls[0].name == "lookup_booking"
    assert messages[2].tool_call_id == messages[1].tool_calls[0].id == "tool_call_1"
