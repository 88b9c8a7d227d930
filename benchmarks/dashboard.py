"""Server-side render time of the dashboard's conversations page over many conversations.

Builds the app as ``openline serve`` does (instant fake voice providers: no call runs),
stores ``--conversations`` conversations (one item each) straight into the database,
signs in through the real form, and times ``GET /dashboard/conversations`` in process
(ASGI, no network): the first page, a page deep behind a cursor, and a filtered page.

    PYTHONPATH=src python benchmarks/dashboard.py --conversations 100000 --requests 50
    PYTHONPATH=src python benchmarks/dashboard.py --database postgresql+asyncpg://...
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select, text

from openline.boot.server import create_app
from openline.domain import ids
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM
from openline.settings import Settings
from openline.store import tables as t
from openline.store.db import Database
from openline.voice.session import Providers

KEY = "ol_bench_" + uuid.uuid4().hex
CHUNK = 5000


async def seed(database_url: str, secret_key: str, count: int) -> list[str]:
    """``count`` finished conversations over the last 30 days; returns their ids."""
    db = Database(database_url, secret_key=secret_key)
    conv_ids: list[str] = []
    now = datetime.now(UTC)
    try:
        async with db.session() as s:
            proj = await s.scalar(select(t.Project).where(t.Project.name == "main"))
            assert proj is not None
        for start in range(0, count, CHUNK):
            convs: list[dict[str, Any]] = []
            items: list[dict[str, Any]] = []
            for i in range(start, min(start + CHUNK, count)):
                conv_id = ids.new_id(ids.CONVERSATION)
                started = now - timedelta(seconds=30 * 86400 * i / count)
                conv_ids.append(conv_id)
                convs.append(dict(
                    id=conv_id, workspace_id=proj.workspace_id, project_id=proj.id,
                    agent_id=None, agent_name="bench", external_id=f"ext-{i}",
                    origin="sdk-py", config={"input_format": "pcm_16000"},
                    started_at=started, ended_at=started + timedelta(seconds=40),
                    duration_ms=40_000.0 + i % 600 * 1000, ended_by="user",
                    live_transcript="User: hello\nAssistant: hi, how can I help?",
                    latencies_ms=[410.0, 530.0], interruptions_count=i % 3,
                    task_results={}))
                items.append(dict(id=ids.new_id(ids.CONVERSATION_ITEM), conversation_id=conv_id,
                                  item_idx=0, role="user", live_transcript="hello",
                                  started_at=started, duration_ms=700.0, tool_calls=[]))
            async with db.session() as s:
                await s.execute(insert(t.Conversation), convs)
                await s.execute(insert(t.ConversationItem), items)
        if not db.is_sqlite:  # what autovacuum does shortly after a bulk load
            async with db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("ANALYZE"))
    finally:
        await db.dispose()
    return conv_ids


async def sign_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    r = await client.post("/dashboard/login", data={"api_key": KEY,
                                                    "csrf_token": token.group(1)})
    assert r.status_code == 303, r.text


async def timed(client: httpx.AsyncClient, url: str, requests: int) -> list[float]:
    out = []
    for _ in range(requests):
        started = time.perf_counter()
        r = await client.get(url)
        out.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200 and "conversation-list" in r.text, (url, r.status_code)
    return out


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (f"{name:<28} p50 {statistics.median(ms):6.1f} ms   p95 {p95:6.1f} ms   "
            f"max {ms[-1]:6.1f} ms   (n={len(ms)})")


async def main(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="openline-dash-bench-"))
    url = args.database or f"sqlite+aiosqlite:///{data / 'openline.db'}"
    settings = Settings(data_dir=data, database_url=url, api_key=KEY, secret_key="bench")
    providers = Providers(EnergyVAD(), FakeSTT(default="hello"), ScriptedLLM(), FakeTTS())
    app = create_app(settings, providers, announce_key=False, verbose=False)
    async with app.router.lifespan_context(app):
        started = time.perf_counter()
        conv_ids = await seed(url, "bench", args.conversations)
        print(f"stored {len(conv_ids)} conversations in {time.perf_counter() - started:.1f} s")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await sign_in(client)
            middle = conv_ids[len(conv_ids) // 2]
            cases = {"first page (20)": "/dashboard/conversations",
                     "behind a cursor (middle)": f"/dashboard/conversations?after={middle}",
                     "first page (100)": "/dashboard/conversations?limit=100",
                     "filtered (duration >= 300 s)":
                         "/dashboard/conversations?duration_min=300"}
            for name, path in cases.items():
                await timed(client, path, 3)  # warm caches and compiled templates
                print(summary(name, await timed(client, path, args.requests)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--database", help="a database URL (default: a fresh SQLite file)")
    asyncio.run(main(parser.parse_args()))
