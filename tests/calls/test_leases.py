"""Owner-node leases: a node closes only conversations whose lease expired.

Two real servers share one database (PostgreSQL and SQLite). A conversation owned by
another node whose lease is current survives this node's start-up and its periodic
reaper; once that lease lapses (the owner "crashed"), the reaper closes it, ending it at
the last evidence of life.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from openline.store import tables as t
from openline.store.db import Database
from openline.voice.recorder import Recorder
from tests.conftest import LiveServer, start_server
from tests.seed import aseed_conversations
from tests.ws.conftest import collect, config, sdk

LEASE_S = 1.0


async def _set_lease(url: str, conv_id: str, *, node: str, heartbeat: datetime,
                     until: datetime) -> None:
    db = Database(url)
    try:
        async with db.session() as s:
            await s.execute(update(t.Conversation).where(t.Conversation.id == conv_id).values(
                owner_node=node, heartbeat_at=heartbeat, lease_until=until))
    finally:
        await db.dispose()


async def _row(url: str, conv_id: str) -> t.Conversation:
    db = Database(url)
    try:
        async with db.session() as s:
            row = await s.get(t.Conversation, conv_id)
            assert row is not None
            return row
    finally:
        await db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'leases.db'}"
    return str(request.getfixturevalue("pg_database"))


async def test_another_nodes_live_call_survives_until_its_lease_lapses(
        database_url: str, tmp_path: Path) -> None:
    first = start_server(database_url, tmp_path / "a")  # creates the schema and project
    first.stop()
    [conv_id] = await aseed_conversations(database_url, "main", [{"live": True}])
    started = (await _row(database_url, conv_id)).started_at
    heartbeat = started + timedelta(seconds=3)
    # Another node owns it and its lease runs for a few more seconds.
    await _set_lease(database_url, conv_id, node="node-elsewhere", heartbeat=heartbeat,
                     until=datetime.now(UTC) + timedelta(seconds=3 * LEASE_S))
    node = start_server(database_url, tmp_path / "b", conversation_lease_s=LEASE_S)
    try:
        await asyncio.sleep(LEASE_S)  # start-up reap and a periodic one have run
        row = await _row(database_url, conv_id)
        assert row.ended_at is None and row.ended_by is None
        # The owner stops renewing (crash): the reaper closes it after the lease lapses.
        deadline = asyncio.get_running_loop().time() + 10 * LEASE_S
        while (row := await _row(database_url, conv_id)).ended_at is None:
            assert asyncio.get_running_loop().time() < deadline, "expired lease not reaped"
            await asyncio.sleep(0.2)
        assert row.ended_by == "error" and row.lease_until is None
        # Ended at the last evidence of life (the heartbeat), not at start or at reaping.
        assert row.ended_at == heartbeat
        assert row.duration_ms == pytest.approx(3000.0)
    finally:
        node.stop()


async def test_a_live_call_keeps_its_lease_fresh(database_url: str, tmp_path: Path) -> None:
    server: LiveServer = start_server(database_url, tmp_path, conversation_lease_s=LEASE_S)
    try:
        async with sdk(server).conversations.connect() as socket:
            await socket.send_config(config(welcome_message=""))
            seen: list[object] = []
            await collect(socket, "ready_to_start_conversation", seen)
            conv_id = seen[0].conversation_id  # type: ignore[attr-defined]
            first = await _row(database_url, conv_id)
            assert first.owner_node and first.lease_until is not None
            await asyncio.sleep(3 * LEASE_S)  # three leases long: renewed, never reaped
            later = await _row(database_url, conv_id)
            assert later.ended_at is None and later.owner_node == first.owner_node
            assert later.heartbeat_at is not None and first.heartbeat_at is not None
            assert later.heartbeat_at > first.heartbeat_at
            assert later.lease_until is not None and later.lease_until > datetime.now(UTC)
        deadline = asyncio.get_running_loop().time() + 5
        while (ended := await _row(database_url, conv_id)).ended_at is None:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        assert ended.ended_by == "user" and ended.lease_until is None
    finally:
        server.stop()


async def test_a_crashed_call_ends_at_the_last_flushed_recording_second(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    start_server(url, tmp_path).stop()
    [conv_id] = await aseed_conversations(url, "main", [{
        "live": True, "started_at": datetime.now(UTC) - timedelta(minutes=1)}])
    started = (await _row(url, conv_id)).started_at
    # the owner's last heartbeat was 3 s in; its recorder had flushed 5.5 s of audio
    await _set_lease(url, conv_id, node="node-dead", heartbeat=started + timedelta(seconds=3),
                     until=started + timedelta(seconds=13))
    tracks = Recorder(tmp_path / "recordings", conv_id)
    tracks.caller(np.full(16000 * 11 // 2, 500, np.int16))
    del tracks  # the process died before saving
    server = start_server(url, tmp_path)
    try:
        row = await _row(url, conv_id)
        assert row.ended_by == "error"
        assert row.duration_ms == pytest.approx(5500.0)  # not 0 (start) nor 3000 (heartbeat)
    finally:
        server.stop()
