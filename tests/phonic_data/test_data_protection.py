"""Data protection through the official SDK: redaction (stored record and webhook payload),
retention windows on a virtual clock, zero data retention, and the watermarking refusal."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from phonic.errors import BadRequestError
from sqlalchemy import select

from openline.postcall.retention import RetentionSweeper
from openline.services.redaction import redact
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow
from tests.conftest import TEST_SECRET_KEY, LiveServer
from tests.phonic_data.conftest import ServerFactory, error_of, one_turn, sdk
from tests.postcall.conftest import WebhookReceiver, wait_until
from tests.postcall.seeding import aseed
from tests.postcall.test_webhooks import _endpoint

PII = ("my number is (415) 555-0132, card 4111 1111 1111 1111, "
       "mail dana.smith@example.com")
REDACTED = "my number is [PHONE_NUMBER], card [CREDIT_CARD], mail [EMAIL_ADDRESS]"
FAST = {"job_poll_s": 0.1, "job_retry_base_s": 0.05}


@pytest.fixture
def receiver() -> Any:
    r = WebhookReceiver().start()
    yield r
    r.stop()


async def _stored(server: LiveServer, conversation_id: str) -> tuple[t.Conversation,
                                                                      list[t.ConversationItem]]:
    db = Database(server.database_url, secret_key=TEST_SECRET_KEY)
    try:
        async with db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            items = list(await s.scalars(select(t.ConversationItem).where(
                t.ConversationItem.conversation_id == conversation_id)
                .order_by(t.ConversationItem.item_idx)))
    finally:
        await db.dispose()
    assert row is not None
    return row, items


def test_patterns_cover_what_the_module_says() -> None:
    assert redact(PII) == REDACTED
    assert redact("+44 20 7946 0958 or 123-45-6789") == "[PHONE_NUMBER] or [US_SSN]"
    assert redact("IBAN GB82 WEST 1234 5698 7654 32.") == "IBAN [IBAN]."
    # Not a card (fails Luhn), not a phone number: left as it is.
    assert redact("order 1234 5678 9012 3456 for 4 people") == \
        "order 1234 5678 9012 3456 for 4 people"


async def test_redaction_on_the_stored_record_and_the_webhook(
        backend: str, make_server: ServerFactory, receiver: WebhookReceiver) -> None:
    server = make_server(backend, stt_text=PII, **FAST)
    _endpoint(server, receiver)
    client = sdk(server)
    await client.agents.create(name="private", system_prompt="You are Ann.",
                               enable_redaction=True)
    conv_id = await one_turn(client, "private")
    wait_until(lambda: any(json.loads(d.body)["event_type"] == "conversation.ended"
                           for d in receiver.ok()), what="conversation.ended webhook")

    ended = next(json.loads(d.body) for d in receiver.ok()
                 if json.loads(d.body)["event_type"] == "conversation.ended")
    hooked = ended["data"]["conversation"]
    assert hooked["is_redacted"] is True
    user = next(i for i in hooked["items"] if i["role"] == "user")
    assert user["live_transcript"] == REDACTED == user["post_call_transcript"]
    assert user["redacted_transcript"] == REDACTED
    # the whole card number: its first digits alone may occur in a random UUID of the payload
    assert "555-0132" not in json.dumps(ended) and "4111 1111" not in json.dumps(ended)
    assert "dana.smith@" not in json.dumps(ended)

    got = (await client.conversations.get(conv_id)).conversation
    assert got.is_redacted is True and REDACTED in got.live_transcript
    assert REDACTED in got.redacted_transcript
    row, items = await _stored(server, conv_id)  # what the database itself holds
    stored = json.dumps([row.live_transcript, row.post_call_transcript, row.summary,
                         [(i.live_transcript, i.post_call_transcript, i.tool_calls)
                          for i in items]])
    assert REDACTED in stored and "555" not in stored and "example.com" not in stored


async def test_retention_windows_on_a_virtual_clock(backend: str,
                                                    make_server: ServerFactory) -> None:
    server = make_server(backend, **FAST)
    client = sdk(server)
    await client.agents.create(name="brief", system_prompt="You are Ann.",
                               data_retention_policy={
                                   "zero_data_retention": False,
                                   "transcripts": {"delete_after_hours": 1},
                                   "audio_recordings": {"delete_after_hours": 2}})
    conv_id = await one_turn(client, "brief")
    row = await _refined(server, conv_id)
    recording = Path(str(row.recording_path))
    assert _exists(recording)

    db = Database(server.database_url, secret_key=TEST_SECRET_KEY)
    start = utcnow()
    try:
        for later, expected in ((timedelta(minutes=50), (0, 0)),
                                (timedelta(minutes=61), (1, 0)),
                                (timedelta(minutes=121), (0, 1)),
                                (timedelta(hours=5), (0, 0))):
            swept = await RetentionSweeper(db, clock=lambda later=later: start + later).sweep()
            assert (swept.transcripts, swept.audio) == expected, later
            if later == timedelta(minutes=61):
                half = (await client.conversations.get(conv_id)).conversation
                assert half.live_transcript is None and half.post_call_transcript is None
                assert all(i.live_transcript is None and i.post_call_transcript is None
                           for i in half.items) and half.items
                assert half.deletion_info.transcripts_deleted_at is not None
                assert half.deletion_info.audio_recordings_deleted_at is None
                assert half.audio_url is not None and _exists(recording)
    finally:
        await db.dispose()
    gone = (await client.conversations.get(conv_id)).conversation
    assert gone.audio_url is None and not _exists(recording)
    assert gone.deletion_info.audio_recordings_deleted_at is not None
    assert gone.duration_ms and gone.ended_by == "user"  # the metadata stays


def _exists(path: Path) -> bool:
    return path.exists()


def _recordings(server: LiveServer, conv_id: str) -> list[Path]:
    """Files of the conversation in the server's recordings folder (tracks included)."""
    return list((server.data_dir / "recordings").glob(f"{conv_id}*"))


async def _refined(server: LiveServer, conv_id: str) -> t.Conversation:
    """The stored row once the post-call job has refined its transcript."""
    for _ in range(300):
        row, _ = await _stored(server, conv_id)
        if row.post_call_transcript is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError("the post-call transcript never came")


async def test_conversations_closed_elsewhere_get_their_deletion_too(
        make_server: ServerFactory) -> None:
    # Rows a crashed node's lease reaper closed never passed the end-of-call hook.
    server = make_server()
    zero = await aseed(server.database_url,
                       config={"data_retention_policy": {"zero_data_retention": True}})
    day = await aseed(server.database_url, config={"data_retention_policy": {
        "transcripts": {"delete_after_hours": 24}}})
    plain = await aseed(server.database_url)
    db = Database(server.database_url, secret_key=TEST_SECRET_KEY)
    try:
        swept = await RetentionSweeper(db).sweep()
        assert (swept.transcripts, swept.audio) == (1, 1)  # the zero-retention one
        later = await RetentionSweeper(db, clock=lambda: utcnow() + timedelta(hours=25)).sweep()
        assert (later.transcripts, later.audio) == (1, 0)
    finally:
        await db.dispose()
    client = sdk(server)
    for conv_id, kept in ((zero, False), (day, False), (plain, True)):
        conversation = (await client.conversations.get(conv_id)).conversation
        assert (conversation.live_transcript is not None) is kept, conv_id
        assert all((i.live_transcript is not None) is kept for i in conversation.items)


async def test_zero_data_retention_keeps_only_metadata(
        make_server: ServerFactory, receiver: WebhookReceiver) -> None:
    server = make_server(stt_text=PII, **FAST)
    _endpoint(server, receiver)
    client = sdk(server)
    await client.agents.create(name="ghost", system_prompt="You are Ann.",
                               data_retention_policy={"zero_data_retention": True})
    conv_id = await one_turn(client, "ghost")
    wait_until(lambda: len(receiver.ok()) >= 2, what="webhooks")
    got = (await client.conversations.get(conv_id)).conversation
    assert got.ended_by == "user" and got.duration_ms and len(got.items) == 2
    assert got.live_transcript is None and got.post_call_transcript is None
    assert got.summary is None and got.audio_url is None
    assert all(i.live_transcript is None and i.post_call_transcript is None
               for i in got.items)
    assert not _recordings(server, conv_id)
    bodies = json.dumps([json.loads(d.body) for d in receiver.ok()])
    assert conv_id in bodies and "555" not in bodies and "I can help" not in bodies


async def test_watermarking_is_refused_clearly(make_server: ServerFactory) -> None:
    client = sdk(make_server())
    with pytest.raises(BadRequestError) as refused:
        await client.agents.create(name="marked", enable_watermarking=True)
    assert "watermarking is not supported" in error_of(refused.value)["message"]
    assert "enable_watermarking" in refused.value.body["param_errors"]
    await client.agents.create(name="plain")
    with pytest.raises(BadRequestError):
        await client.agents.update("plain", enable_watermarking=True)
    assert (await client.agents.get("plain")).agent.enable_watermarking is False
