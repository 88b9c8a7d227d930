"""Secrets at rest (issue 9): sealed in the database, masked by the API, still used by calls.

The database is read raw (sqlite3 and the file bytes, or asyncpg), never through Openline;
the secrets still reach a real local HTTP server during a call; migration 0004 seals what
older releases stored in plaintext; a wrong key stops the process at start-up.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.routing import Route

from openline.domain.tool import ToolSpec
from openline.providers.testing import ScriptedLLM, ScriptedReply
from openline.services.principal import Principal
from openline.services.tools import ToolService
from openline.store.db import Database, alembic_config
from openline.store.sealed import PREFIX, SecretKeyError
from tests.conftest import PG_ADMIN_DSN, LiveServer, fake_providers, free_port, start_server
from tests.tools.conftest import Target, client_for
from tests.tools.session import stored, talk_to


def secret(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


@pytest.fixture
def target() -> Iterator[Target]:
    """A customer's server (webhook tool + configuration endpoint) that records requests."""
    t = Target()
    app = Starlette(routes=[Route("/orders/{order_id}", t.order, methods=["GET", "POST"]),
                            Route("/config", t.config, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    t.base_url = f"http://127.0.0.1:{port}"
    yield t
    server.should_exit = True


@pytest.fixture(params=["sqlite", "postgres"])
def sealed_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'sealed.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_database"))
    llm = ScriptedLLM([ScriptedReply.call("lookup_order", '{"order_id": "A1"}'), "Shipped."])
    server = start_server(url, tmp_path, fake_providers(llm=llm))
    yield server
    server.stop()


@dataclass
class Secrets:
    tool: str
    endpoint: str
    number: str
    sip_password: str
    webhook: str = ""
    phone: str = ""

    def all(self) -> list[str]:
        return [self.tool, self.endpoint, self.number, self.sip_password, self.webhook]


def _configure(http: httpx.Client, target: Target, project: str, s: Secrets) -> None:
    r = http.post("/tools", params={"project": project}, json={
        "name": "lookup_order", "description": "Find an order", "type": "custom_webhook",
        "execution_mode": "sync", "endpoint_method": "POST",
        "endpoint_url": target.base_url + "/orders/{order_id}",
        "endpoint_headers": {"Authorization": s.tool, "X-Short": "tiny"},
        "parameters": [{"type": "string", "name": "order_id", "description": "Order",
                        "is_required": True, "location": "url_path"}]})
    assert r.status_code == 201, r.text
    r = http.post("/agents", params={"project": project}, json={
        "name": "shop", "tools": ["lookup_order"], "voice_id": "joe",
        "configuration_endpoint": {"url": target.base_url + "/config",
                                   "headers": {"X-Token": s.endpoint}}})
    assert r.status_code == 201, r.text
    s.phone = number = "+1555" + str(uuid.uuid4().int)[:7]
    r = http.post("/agents/shop/custom-phone-numbers", params={"project": project},
                  json={"phone_number": number, "configuration_endpoint": {
                      "url": target.base_url + "/config", "headers": {"X-Number": s.number}}},
                  headers={"X-Sip-Address": "sip.example.com", "X-Sip-Auth-Username": "u",
                           "X-Sip-Auth-Password": s.sip_password})
    assert r.status_code == 200, r.text
    r = http.post("/webhook_endpoints", json={"url": target.base_url + "/orders/hook"})
    assert r.status_code == 201, r.text
    s.webhook = r.json()["secret"]


def _reads_are_masked(http: httpx.Client, project: str, s: Secrets) -> None:
    tool = http.get("/tools/lookup_order", params={"project": project}).json()["tool"]
    assert tool["endpoint_headers"] == {"Authorization": s.tool[:4] + "...", "X-Short": "****"}
    agent = http.get("/agents/shop", params={"project": project}).json()["agent"]
    assert agent["configuration_endpoint"]["headers"] == {"X-Token": s.endpoint[:4] + "..."}
    listing = http.get("/webhook_endpoints").text + http.get("/agents",
                                                             params={"project": project}).text
    assert not any(value in listing for value in s.all())
    # Sent back as read (with a change elsewhere), the masked values mean "unchanged".
    r = http.patch("/tools/lookup_order", params={"project": project},
                   json={"endpoint_headers": tool["endpoint_headers"], "description": "Find it"})
    assert r.status_code == 200, r.text
    r = http.patch("/agents/shop", params={"project": project},
                   json={"configuration_endpoint": agent["configuration_endpoint"]})
    assert r.status_code == 200, r.text
    r = http.patch("/agents/shop/phone-numbers", params={"project": project}, json={
        "phone_number": s.phone, "configuration_endpoint": {
            "url": "https://n.example.com/", "headers": {"X-Number": s.number[:4] + "...",
                                                         "X-New": "literal"}}})
    assert r.status_code == 200, r.text


def _prepare(server: LiveServer, target: Target, project: str, s: Secrets) -> None:
    with httpx.Client(base_url=f"{server.url}/v1",
                      headers={"Authorization": f"Bearer {server.api_key}"}) as http:
        assert http.post("/projects", json={"name": project}).status_code == 201
        _configure(http, target, project, s)
        _reads_are_masked(http, project, s)


async def test_secrets_are_sealed_masked_and_still_sent(sealed_server: LiveServer,
                                                        target: Target) -> None:
    s = Secrets(secret("Bearer tool"), secret("cfg"), secret("num"), secret("sip"))
    project = "p-" + uuid.uuid4().hex[:10]
    await asyncio.to_thread(_prepare, sealed_server, target, project, s)
    async with talk_to(client_for(sealed_server), agent="shop", project=project) as talk:
        await talk.say_as_user("Where is my order?")
    conv = await stored(sealed_server, talk.conversation_id)
    config, order = target.requests[0], target.requests[1]
    assert config["path"] == "/config" and config["headers"]["x-token"] == s.endpoint
    assert order["path"] == "/orders/A1"
    assert order["headers"]["authorization"] == s.tool and order["headers"]["x-short"] == "tiny"
    assert conv["items"][-1]["tool_calls"][0]["status"] == "success"
    assert await stored_number_headers(sealed_server, s.phone) == {
        "X-Number": s.number, "X-New": "literal"}
    dump = await raw_dump(sealed_server.database_url)
    leaked = [value for value in s.all() if value in dump]
    assert leaked == []
    assert await sealed_values(sealed_server.database_url, talk.conversation_id) == 5


async def stored_number_headers(server: LiveServer, number: str) -> dict[str, str]:
    """The number's configuration endpoint headers as Openline opens them (with its key)."""
    from openline.store import tables as t

    db = Database(server.database_url, secret_key=(server.data_dir / "secret_key").read_text())
    try:
        async with db.session() as session:
            row = await session.scalar(sa.select(t.PhoneNumber)
                                       .where(t.PhoneNumber.number == number))
    finally:
        await db.dispose()
    assert row is not None and row.configuration_endpoint is not None
    return dict(row.configuration_endpoint["headers"])


async def raw_dump(database_url: str) -> str:
    """Every row of every table as text, read without Openline (plus SQLite's files)."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.split("///", 1)[1])
        with sqlite3.connect(path) as con:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master "
                                                "WHERE type = 'table'")]
            rows = [repr(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables]
        files = [p.read_bytes().decode("latin-1") for p in path.parent.glob(path.name + "*")]
        return "\n".join(rows + files)
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = [r[0] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
        rows = [repr([r[0] for r in await conn.fetch(f'SELECT t::text FROM "{t}" t')])
                for t in tables]
    finally:
        await conn.close()
    return "\n".join(rows)


async def sealed_values(database_url: str, conversation_id: str | None) -> int:
    """How many of the secret-bearing columns of this test's rows hold sealed values."""
    engine = create_async_engine(database_url)  # plain Core: no Openline column types
    queries = [
        ("SELECT spec FROM tools WHERE name = 'lookup_order' ORDER BY created_at DESC", None),
        ("SELECT spec FROM agents WHERE name = 'shop' ORDER BY created_at DESC", None),
        ("SELECT configuration_endpoint FROM phone_numbers ORDER BY created_at DESC", None),
        ("SELECT secret FROM webhook_endpoints ORDER BY created_at DESC", None),
        ("SELECT config FROM conversations WHERE id = :id", {"id": conversation_id}),
    ]
    count = 0
    try:
        async with engine.connect() as conn:
            for sql, params in queries:
                value = (await conn.execute(sa.text(sql), params or {})).first()
                assert value is not None, sql
                count += PREFIX in str(value[0])
    finally:
        await engine.dispose()
    return count


# --- migration 0004 and legacy plaintext ------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, for migrating from an older revision."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'legacy.db'}"
        return
    name = "openline_legacy_" + uuid.uuid4().hex[:12]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _legacy_rows(url: str, s: Secrets) -> None:
    """What a release before 0004 wrote: the schema at 0003 and secrets in plaintext."""
    from openline.store import tables as t
    from openline.store import tables_postcall as tp

    old = Database(url)  # no key: nothing is sealed
    try:
        async with old.engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0003"))
        endpoint = {"url": "https://cfg.example.com/", "headers": {"X-Token": s.endpoint}}
        async with old.session() as db:
            db.add(t.Workspace(id="ws_legacy", name="default", settings={}))
            await db.flush()
            db.add(t.Project(id="proj_legacy", workspace_id="ws_legacy", name="main"))
            await db.flush()
            db.add(t.Agent(id="agent_legacy", project_id="proj_legacy", name="old",
                           spec={"name": "old", "configuration_endpoint": endpoint}))
            db.add(t.Tool(id="tool_legacy", project_id="proj_legacy", name="hook", spec={
                "name": "hook", "description": "d", "type": "custom_webhook",
                "execution_mode": "sync", "endpoint_method": "POST",
                "endpoint_url": "https://w.example.com/", "endpoint_headers": {"A": s.tool}}))
            db.add(tp.WebhookEndpoint(id="whep_legacy", workspace_id="ws_legacy",
                                      url="https://h.example.com/", secret=s.webhook))
            await db.flush()
            db.add(t.AgentVersion(agent_id="agent_legacy", version_number=1,
                                  spec={"name": "old", "configuration_endpoint": endpoint}))
            db.add(t.PhoneNumber(id="pn_legacy", workspace_id="ws_legacy", number="+15550001234",
                                 agent_id="agent_legacy", source="custom",
                                 sip={"address": "sip.example.com", "username": "u",
                                      "password": s.sip_password},
                                 configuration_endpoint={"url": "https://n.example.com/",
                                                         "headers": {"X-N": s.number}}))
            db.add(t.Conversation(id="conv_legacy", workspace_id="ws_legacy",
                                  project_id="proj_legacy", config={"configuration_endpoint":
                                                                    endpoint}))
    finally:
        await old.dispose()


async def _rows(url: str) -> str:
    engine = create_async_engine(url)  # plain Core: no Openline column types
    tables = ("agents", "agent_versions", "tools", "phone_numbers", "conversations",
              "webhook_endpoints")
    try:
        async with engine.connect() as conn:
            # plain tuples: a Row's repr shortens long values (it would hide a leak)
            rows = [repr([tuple(r) for r in await conn.execute(sa.text(f"SELECT * FROM {t}"))])
                    for t in tables]
        return "\n".join(rows)
    finally:
        await engine.dispose()


async def test_migration_0004_seals_what_older_releases_stored(fresh_url: str) -> None:
    s = Secrets(secret("tool"), secret("cfg"), secret("num"), secret("sip"), secret("whsec"))
    await _legacy_rows(fresh_url, s)
    legacy = await _rows(fresh_url)
    assert all(value in legacy for value in s.all())
    db = Database(fresh_url, secret_key="the-key")
    who = Principal("ws_legacy", "default")
    try:
        # Readers accept legacy plaintext until it is migrated...
        tool = await ToolService(db).get(who, None, "hook")
        assert tool.spec.endpoint_headers == {"A": s.tool}
        await db.migrate()  # ... and 0004 seals it
        rows = await _rows(fresh_url)
        assert [value for value in s.all() if value in rows] == []
        # agent, agent version, tool, SIP password, number, conversation, webhook secret
        assert rows.count(PREFIX) == 7
        tool = await ToolService(db).get(who, None, "hook")
        assert isinstance(tool.spec, ToolSpec) and tool.spec.endpoint_headers == {"A": s.tool}
        from openline.store import tables_postcall as tp

        async with db.session() as session:
            hook = await session.get(tp.WebhookEndpoint, "whep_legacy")
            assert hook is not None and hook.secret == s.webhook
    finally:
        await db.dispose()


# --- the key ----------------------------------------------------------------------------------

async def test_a_wrong_key_stops_the_database_at_start_up(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    first = Database(url, secret_key="first")
    await first.migrate()
    await first.dispose()
    other = Database(url, secret_key="second")
    with pytest.raises(SecretKeyError, match="does not match the key that sealed"):
        await other.migrate()
    await other.dispose()
    again = Database(url, secret_key="first")
    await again.migrate()  # the right key still opens it
    await again.dispose()


async def test_without_a_key_a_sealed_value_is_an_error_not_garbage(tmp_path: Path) -> None:
    from openline.store import tables as t
    from openline.store import tables_postcall as tp

    url = f"sqlite+aiosqlite:///{tmp_path / 'n.db'}"
    keyed = Database(url, secret_key="k")
    await keyed.migrate()
    async with keyed.session() as session:
        session.add(t.Workspace(id="ws_1", name="default", settings={}))
        await session.flush()
        session.add(tp.WebhookEndpoint(id="whep_1", workspace_id="ws_1", url="https://x/",
                                       secret="whsec_plain"))
    await keyed.dispose()
    keyless = Database(url)
    try:
        with pytest.raises(SecretKeyError, match="without a secret key"):
            async with keyless.session() as session:
                await session.get(tp.WebhookEndpoint, "whep_1")
    finally:
        await keyless.dispose()


def test_the_cli_reports_a_wrong_key_clearly(tmp_path: Path) -> None:
    """What an operator sees when OPENLINE_SECRET_KEY changed: one line, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    env.update(OPENLINE_DATA_DIR=str(tmp_path / "data"), OPENLINE_SECRET_KEY="original")

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "openline.cli.main", "keys", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    assert keys("create").returncode == 0
    env["OPENLINE_SECRET_KEY"] = "changed"
    wrong = keys("list")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: The secret key does not match"), wrong.stderr
    assert "Traceback" not in wrong.stderr
    env["OPENLINE_SECRET_KEY"] = "original"
    assert keys("list").returncode == 0
