"""REST API benchmark: seeded conversations, ``agents.get`` and filtered ``conversations.list``.

A script, not a timed test. For each storage backend it:

1. creates a fresh database (SQLite file in a temporary directory, or a throw-away
   PostgreSQL database ``openline_bench_<hex>`` that is dropped at the end);
2. starts ``openline serve`` as a subprocess on 127.0.0.1 with a static API key
   (migrations and the bootstrap of workspace ``default`` / project ``main`` run at
   start-up), so the load generator does not share the server's GIL;
3. creates an agent through the API with the official ``phonic`` SDK;
4. bulk-inserts N conversations (default 100,000, 2-4 items each) straight into the
   database with SQLAlchemy Core ``insert()`` executemany, in batches;
5. measures client-side latency of ``agents.get``, a filtered ``conversations.list``
   page, and a paginated walk with ``after=next_cursor``, at each concurrency level,
   after a warm-up; it reports requests/s and p50/p95/p99.

With ``--dialect vapi`` (or ``both``) the Vapi dialect's ``assistants.get`` and
``calls.list`` are measured on the same data (``benchmarks/vapi_api.py``).

Usage::

    .venv/bin/python benchmarks/api.py --backend both --write-docs

Every loop is bounded by a count and a time limit; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import vapi_api
from _common import bench_server
from phonic import AsyncPhonic
from phonic.environment import PhonicEnvironment
from sqlalchemy import func, insert, select, text

from openline.store import tables as t
from openline.store.db import Database

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
PG_ADMIN_DSN = os.environ.get("OPENLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
API_KEY = "ol_bench_" + uuid.uuid4().hex
AGENT_NAME = "bench-agent"
PROJECT = "main"
SEED_DAYS = 180
SERVER_START_S = 60.0
NO_RETRY: dict[str, Any] = {"max_retries": 0}
SECTION = "## REST API (benchmarks/api.py)"
BEGIN, END = "<!-- api-bench:begin -->", "<!-- api-bench:end -->"
#: ``--dialect vapi`` runs write their own block (the Phonic table stays as it is)
VAPI_SECTION = "## REST API, Vapi dialect (benchmarks/api.py --dialect vapi)"
VAPI_BEGIN, VAPI_END = "<!-- api-bench-vapi:begin -->", "<!-- api-bench-vapi:end -->"

PROMPT = ("You are the front desk of Harbor Dental. Greet the caller, find out whether they "
          "want to book, move or cancel an appointment, confirm their name and date of birth, "
          "and keep every answer to one or two sentences. Never give medical advice.")
LINES = ("Hi, I'd like to move my cleaning to next week if that's possible.",
         "Of course. Could you tell me your full name and date of birth, please?",
         "Sure, it's Dana Whitfield, March third, nineteen eighty-eight.",
         "Thanks Dana. I have Tuesday at ten or Thursday at two-thirty. Which works better?",
         "Thursday afternoon is great, thank you so much.")


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """Latencies of one operation at one concurrency level on one backend."""

    backend: str
    client: str
    operation: str
    concurrency: int
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0

    @property
    def rps(self) -> float:
        """Measured requests per second of wall time."""
        return len(self.latencies_s) / self.wall_s if self.wall_s else 0.0

    def pct_ms(self, p: float) -> float:
        """The p-th latency percentile in milliseconds."""
        return percentile(sorted(self.latencies_s), p) * 1000


def percentile(ordered: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks."""
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * p / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def markdown_table(results: Sequence[Result]) -> str:
    """Results as a GitHub markdown table (latencies in milliseconds)."""
    rows = ["| backend | client | operation | concurrency | requests | errors | req/s "
            "| p50 ms | p95 ms | p99 ms |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(f"| {r.backend} | {r.client} | {r.operation} | {r.concurrency} "
                    f"| {len(r.latencies_s)} "
                    f"| {r.errors} | {r.rps:.0f} | {r.pct_ms(50):.1f} | {r.pct_ms(95):.1f} "
                    f"| {r.pct_ms(99):.1f} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- databases


async def _pg_admin(sql: str) -> None:
    """Run one statement on the PostgreSQL admin database (CREATE/DROP DATABASE)."""
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(backend: str, workdir: Path) -> AsyncIterator[str]:
    """An empty database for one run, as a SQLAlchemy async URL; removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'openline.db'}"
        return
    name = "openline_bench_" + uuid.uuid4().hex[:12]
    await _pg_admin(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- server


@contextmanager
def openline_server(database_url: str, workdir: Path) -> Iterator[str]:
    """``openline serve`` in a subprocess; yields its base URL once ``/health`` answers."""
    with bench_server(workdir, use_cli=True, database_url=database_url,
                      api_key=API_KEY) as server:
        yield server.url


# --------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class SeedInfo:
    """What was seeded, how long it took, and the time the data is anchored to."""

    conversations: int
    items: int
    seconds: float
    anchor: datetime


def _conversation(rng: random.Random, n: int, ids: tuple[str, str, str], anchor: datetime
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One ended conversation row and its 2-4 item rows."""
    workspace_id, project_id, agent_id = ids
    started = anchor - timedelta(days=rng.random() * SEED_DAYS)
    duration_s = min(3600.0, max(2.0, rng.lognormvariate(math.log(90), 1.0)))
    conv_id = f"conv_{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    items, offset = [], 0.0
    for idx in range(rng.randint(2, 4)):
        role = "assistant" if idx % 2 == 0 else "user"
        span = duration_s / 4
        items.append({
            "id": f"conv_item_{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            "conversation_id": conv_id, "item_idx": idx, "role": role,
            "live_transcript": LINES[(n + idx) % len(LINES)], "post_call_transcript": None,
            "started_at": started + timedelta(seconds=offset), "duration_ms": span * 1000,
            "voice_id": "sabrina" if role == "assistant" else None,
            "audio_speed": 1.0 if role == "assistant" else None,
            "system_prompt": PROMPT if role == "assistant" else None, "tool_calls": [],
        })
        offset += span
    row = {
        "id": conv_id, "workspace_id": workspace_id, "project_id": project_id,
        "agent_id": agent_id, "agent_name": AGENT_NAME,
        "external_id": f"crm-{n:07d}" if rng.random() < 0.3 else None,
        "origin": rng.choice(("direct", "direct", "inbound_call", "outbound_call")),
        "config": {"system_prompt": PROMPT, "welcome_message": "Harbor Dental, how can I help?",
                   "voice_id": "sabrina", "languages": ["en"], "input_format": "pcm_44100",
                   "output_format": "pcm_44100", "template_variables": {"clinic": "Harbor"}},
        "started_at": started, "ended_at": started + timedelta(seconds=duration_s),
        "duration_ms": duration_s * 1000, "ended_by": rng.choice(("user", "assistant")),
        "live_transcript": "\n".join(i["live_transcript"] for i in items),
        "latencies_ms": [round(rng.uniform(350, 900), 1) for _ in range(len(items) // 2)],
        "interruptions_count": rng.randint(0, 2), "task_results": {},
    }
    return row, items


async def _seed_ids(db: Database) -> tuple[str, str, str]:
    """Workspace, project and agent IDs of the bootstrapped ``main`` project."""
    async with db.session() as s:
        proj = await s.scalar(select(t.Project).where(t.Project.name == PROJECT))
        assert proj is not None, "the server did not bootstrap project 'main'"
        agent_id = await s.scalar(select(t.Agent.id).where(
            t.Agent.project_id == proj.id, t.Agent.name == AGENT_NAME))
        assert agent_id is not None, "the benchmark agent was not created"
        return proj.workspace_id, proj.id, agent_id


async def seed(database_url: str, count: int, batch: int, seed_value: int) -> SeedInfo:
    """Insert ``count`` conversations (and their items) in executemany batches."""
    db = Database(database_url)
    rng = random.Random(seed_value)
    anchor = datetime.now(UTC).replace(microsecond=0)
    began, n_items = time.perf_counter(), 0
    try:
        ids = await _seed_ids(db)
        for start in range(0, count, batch):
            convs, items = [], []
            for n in range(start, min(count, start + batch)):
                row, its = _conversation(rng, n, ids, anchor)
                convs.append(row)
                items.extend(its)
            async with db.engine.begin() as conn:
                await conn.execute(insert(t.Conversation.__table__), convs)
                await conn.execute(insert(t.ConversationItem.__table__), items)
            n_items += len(items)
        async with db.engine.begin() as conn:
            stored = await conn.scalar(select(func.count()).select_from(t.Conversation))
            if not db.is_sqlite:
                await conn.execute(text("ANALYZE"))  # what autovacuum would do shortly after
    finally:
        await db.dispose()
    assert stored == count, f"seeded {stored} conversations, expected {count}"
    return SeedInfo(count, n_items, time.perf_counter() - began, anchor)


async def deep_cursor(database_url: str, flt: ListFilter, offset: int) -> tuple[int, str]:
    """The ID at ``offset`` of the filtered, newest-first order: an ``after=`` cursor there."""
    c = t.Conversation
    since = datetime.fromisoformat(flt.started_at_min).replace(tzinfo=UTC)
    matching = select(c.id).where(c.duration_ms >= flt.duration_min * 1000, c.started_at >= since)
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            total = int(await conn.scalar(select(func.count()).select_from(matching.subquery())))
            offset = min(offset, max(0, total - 2 * flt.limit))
            cursor = await conn.scalar(matching.order_by(c.started_at.desc(), c.id.desc())
                                       .offset(offset).limit(1))
    finally:
        await db.dispose()
    assert cursor is not None, "no conversation matches the list filter"
    return offset, str(cursor)


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class ListFilter:
    """The filtered page every list request asks for."""

    duration_min: int
    started_at_min: str
    limit: int = 20


class Api(Protocol):
    """The two calls under test, whichever client makes them."""

    async def agent_get(self) -> None: ...

    async def list_page(self, after: str | None) -> tuple[int, str | None]: ...


class SdkApi:
    """Calls through the official ``phonic`` SDK (includes its response parsing)."""

    def __init__(self, url: str, http: httpx.AsyncClient, flt: ListFilter) -> None:
        env = PhonicEnvironment(base=f"{url}/v1", production=url.replace("http", "ws", 1))
        self.client = AsyncPhonic(api_key=API_KEY, environment=env, httpx_client=http)
        self.flt = flt

    async def agent_get(self) -> None:
        got = await self.client.agents.get(AGENT_NAME, project=PROJECT,
                                           request_options=NO_RETRY)
        assert got.agent.name == AGENT_NAME

    async def list_page(self, after: str | None) -> tuple[int, str | None]:
        page = await self.client.conversations.list(
            project=PROJECT, duration_min=self.flt.duration_min,
            started_at_min=self.flt.started_at_min, limit=self.flt.limit, after=after,
            request_options=NO_RETRY)
        return len(page.conversations), page.pagination.next_cursor


class HttpxApi:
    """Plain ``httpx`` plus ``json()``: the server's share without SDK model parsing."""

    def __init__(self, url: str, http: httpx.AsyncClient, flt: ListFilter) -> None:
        self.http, self.url = http, f"{url}/v1"
        self.headers = {"Authorization": f"Bearer {API_KEY}"}
        self.flt = flt

    async def agent_get(self) -> None:
        resp = await self.http.get(f"{self.url}/agents/{AGENT_NAME}", headers=self.headers,
                                   params={"project": PROJECT})
        resp.raise_for_status()
        assert resp.json()["agent"]["name"] == AGENT_NAME

    async def list_page(self, after: str | None) -> tuple[int, str | None]:
        params: dict[str, str | int] = {
            "project": PROJECT, "duration_min": self.flt.duration_min,
            "started_at_min": self.flt.started_at_min, "limit": self.flt.limit}
        if after:
            params["after"] = after
        resp = await self.http.get(f"{self.url}/conversations", headers=self.headers,
                                   params=params)
        resp.raise_for_status()
        body = resp.json()
        return len(body["conversations"]), body["pagination"]["next_cursor"]


# --------------------------------------------------------------------------- load


Call = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """An operation; ``worker`` makes one independent caller (walks keep their cursor)."""

    name: str
    worker: Callable[[], Call]


def scenarios(api: Api, walk_pages: int, deep: tuple[int, str]) -> list[Scenario]:
    """``agents.get``, the first filtered page, a cursor walk, and one deep cursor page."""
    deep_offset, deep_cursor = deep

    async def first_page() -> None:
        count, _ = await api.list_page(None)
        assert count > 0

    async def deep_page() -> None:
        count, _ = await api.list_page(deep_cursor)
        assert count > 0

    def walker() -> Call:
        state: dict[str, Any] = {"cursor": None, "depth": 0}

        async def step() -> None:
            _, nxt = await api.list_page(state["cursor"])
            state["depth"] += 1
            if nxt is None or state["depth"] >= walk_pages:
                state.update(cursor=None, depth=0)
            else:
                state["cursor"] = nxt
        return step

    return [Scenario("agents.get", lambda: api.agent_get),
            Scenario("conversations.list (filtered, page 1)", lambda: first_page),
            Scenario(f"conversations.list walk (after=, {walk_pages} pages)", walker),
            Scenario(f"conversations.list deep page (after= row {deep_offset:,})",
                     lambda: deep_page)]


async def drive(calls: Sequence[Call], total: int, time_limit_s: float, result: Result) -> None:
    """Issue ``total`` requests over ``len(calls)`` concurrent callers, recording latencies."""
    issued = 0
    deadline = time.monotonic() + time_limit_s

    async def worker(call: Call) -> None:
        nonlocal issued
        while issued < total and time.monotonic() < deadline:
            issued += 1
            began = time.perf_counter()
            try:
                await call()
            except Exception:  # counted, not fatal: the report shows errors per row
                result.errors += 1
                continue
            result.latencies_s.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in calls))
    result.wall_s = time.perf_counter() - began


async def measure(backend: str, client: str, scenario: Scenario, opts: argparse.Namespace,
                  concurrency: int) -> Result:
    """Warm up, then measure one scenario at one concurrency level."""
    calls = [scenario.worker() for _ in range(concurrency)]
    warm = Result(backend, client, "warm-up", concurrency)
    await drive(calls, opts.warmup, opts.time_limit, warm)
    result = Result(backend, client, scenario.name, concurrency)
    await drive(calls, opts.requests, opts.time_limit, result)
    return result


# --------------------------------------------------------------------------- orchestration


@dataclass
class BackendRun:
    """Everything measured on one storage backend."""

    backend: str
    seed: SeedInfo
    results: list[Result]


async def create_agent(url: str) -> None:
    """The project-scoped agent every conversation belongs to, made through the SDK."""
    env = PhonicEnvironment(base=f"{url}/v1", production=url.replace("http", "ws", 1))
    async with httpx.AsyncClient(timeout=30) as http:
        client = AsyncPhonic(api_key=API_KEY, environment=env, httpx_client=http)
        await client.agents.create(name=AGENT_NAME, project=PROJECT,
                                   system_prompt=PROMPT, request_options=NO_RETRY)


async def run_backend(backend: str, opts: argparse.Namespace) -> BackendRun:
    """Fresh database, server, agent, seed, then every scenario at every concurrency."""
    workdir = Path(tempfile.mkdtemp(prefix=f"openline-bench-{backend}-"))
    try:
        async with fresh_database(backend, workdir) as db_url:
            with openline_server(db_url, workdir) as url:
                await create_agent(url)
                log(f"[{backend}] server {url}; seeding {opts.conversations} conversations")
                info = await seed(db_url, opts.conversations, opts.batch, opts.seed)
                log(f"[{backend}] seeded {info.conversations} conversations, {info.items} "
                    f"items in {info.seconds:.1f} s")
                flt = list_filter(info)
                deep = await deep_cursor(db_url, flt, opts.deep_offset)
                results = await load(backend, url, flt, deep, opts)
        return BackendRun(backend, info, results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def list_filter(info: SeedInfo) -> ListFilter:
    """At least a minute long, started in the newer half of the seeded period."""
    since = (info.anchor - timedelta(days=SEED_DAYS // 2)).date().isoformat()
    return ListFilter(duration_min=60, started_at_min=since)


async def load(backend: str, url: str, flt: ListFilter, deep: tuple[int, str],
               opts: argparse.Namespace) -> list[Result]:
    """Every scenario, client and concurrency level, on one keep-alive connection pool."""
    results: list[Result] = []
    top = max(opts.concurrency)
    limits = httpx.Limits(max_connections=top, max_keepalive_connections=top)
    clients = ("sdk", "httpx") if opts.client == "both" else (opts.client,)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        for client in clients:
            api: Api = (SdkApi if client == "sdk" else HttpxApi)(url, http, flt)
            chosen = scenarios(api, opts.walk_pages, deep) if opts.dialect != "vapi" else []
            if opts.dialect != "phonic":
                chosen += await vapi_scenarios(url, http, client, flt)
            for scenario in chosen:
                for concurrency in opts.concurrency:
                    result = await measure(backend, client, scenario, opts, concurrency)
                    log(markdown_table([result]).splitlines()[-1])
                    results.append(result)
    return results


async def vapi_scenarios(url: str, http: httpx.AsyncClient, client: str,
                         flt: ListFilter) -> list[Scenario]:
    """The Vapi dialect's operations on the same server and data."""
    agent_id = await vapi_api.agent_id_of(url, API_KEY, AGENT_NAME)
    since = datetime.fromisoformat(flt.started_at_min).replace(tzinfo=UTC).isoformat()
    cls = vapi_api.VapiSdkApi if client == "sdk" else vapi_api.VapiHttpxApi
    api = cls(url, API_KEY, http, agent_id, since, flt.limit)
    return [Scenario(name, lambda call=call: call)
            for name, call in vapi_api.operations(api, flt.limit)]


def log(message: str) -> None:
    """Progress goes to stderr; the final report goes to stdout."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- report


def machine() -> str:
    """``N cores / M GiB`` and whether an NVIDIA GPU is visible."""
    meminfo = Path("/proc/meminfo")
    found = re.search(r"MemTotal:\s+(\d+)", meminfo.read_text()) if meminfo.exists() else None
    mem = f"{round(int(found.group(1)) / 1024**2)}" if found else "?"
    gpu = "NVIDIA GPU" if shutil.which("nvidia-smi") else "no GPU"
    return f"{os.cpu_count()} cores / {mem} GiB, {gpu}"


def command_line(opts: argparse.Namespace) -> str:
    """The exact command that reproduces this run (and rewrites the docs table)."""
    conc = ",".join(str(c) for c in opts.concurrency)
    return (f".venv/bin/python benchmarks/api.py --backend {opts.backend} "
            f"--conversations {opts.conversations} --requests {opts.requests} "
            f"--concurrency {conc} --client {opts.client} --dialect {opts.dialect} "
            f"--write-docs")


def report_block(runs: Sequence[BackendRun], opts: argparse.Namespace) -> str:
    """The generated part of the docs section: metadata, command and table."""
    seeds = "; ".join(f"{r.backend}: {r.seed.conversations:,} conversations + "
                      f"{r.seed.items:,} items seeded in {r.seed.seconds:.0f} s" for r in runs)
    flt = list_filter(runs[0].seed)
    begin, end = (VAPI_BEGIN, VAPI_END) if opts.dialect == "vapi" else (BEGIN, END)
    return "\n".join([
        begin,
        f"Date: {datetime.now(UTC).date().isoformat()}. Machine: {machine()}. "
        f"Python {sys.version.split()[0]}, client: {opts.client}.",
        "",
        "Reproduce:",
        "",
        "```sh",
        command_line(opts),
        "```",
        "",
        f"Seed: {seeds}. List filter: `duration_min={flt.duration_min}`, "
        f"`started_at_min=<seed time - {SEED_DAYS // 2} days>`, `limit={flt.limit}`. "
        f"{opts.requests} measured requests per row after {opts.warmup} warm-up requests.",
        "",
        markdown_table([res for run in runs for res in run.results]),
        end,
    ])


def write_docs(block: str, path: Path = DOCS) -> None:
    """Replace the generated block of the section (creating file or section if missing)."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    vapi = block.startswith(VAPI_BEGIN)
    begin, end = (VAPI_BEGIN, VAPI_END) if vapi else (BEGIN, END)
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        updated = head + block + rest.split(end, 1)[1]
    else:
        section = VAPI_SECTION if vapi else SECTION
        updated = current.rstrip("\n") + f"\n\n{section}\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--concurrency`` becomes a list of ints."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000, help="measured per row")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured, per row")
    parser.add_argument("--concurrency", default="1,8",
                        help="comma-separated concurrency levels (default 1,8)")
    parser.add_argument("--walk-pages", type=int, default=50,
                        help="pages followed with after=next_cursor before restarting")
    parser.add_argument("--client", choices=("sdk", "httpx", "both"), default="both",
                        help="phonic SDK (parses into models), raw httpx, or both")
    parser.add_argument("--dialect", choices=("phonic", "vapi", "both"), default="both",
                        help="which dialect's operations to measure (benchmarks/vapi_api.py)")
    parser.add_argument("--deep-offset", type=int, default=10_000,
                        help="row of the filtered order whose ID is the deep-page cursor")
    parser.add_argument("--batch", type=int, default=2000, help="conversations per insert")
    parser.add_argument("--time-limit", type=float, default=180.0,
                        help="seconds at most per measured row (and per warm-up)")
    parser.add_argument("--seed", type=int, default=20261121, help="random seed of the data")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"write the table into {DOCS.relative_to(ROOT)}")
    opts = parser.parse_args(argv)
    opts.concurrency = [int(c) for c in str(opts.concurrency).split(",") if c.strip()]
    if not opts.concurrency or min(opts.concurrency) < 1 or opts.conversations < 1:
        parser.error("--concurrency and --conversations must be positive")
    return opts


async def amain(opts: argparse.Namespace) -> list[BackendRun]:
    """Run the selected backends one after the other (never concurrently)."""
    backends = ("sqlite", "postgres") if opts.backend == "both" else (opts.backend,)
    return [await run_backend(b, opts) for b in backends]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run, print the markdown report, optionally write it to the docs."""
    opts = parse_args(argv)
    try:
        runs = asyncio.run(amain(opts))
    except KeyboardInterrupt:
        return 130
    block = report_block(runs, opts)
    print(block.split("\n", 1)[1].rsplit("\n", 1)[0])
    if opts.write_docs:
        write_docs(block)
        log(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
