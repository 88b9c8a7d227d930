"""A multi-node Openline deployment on this machine, for tests and benchmarks.

``Cluster`` starts N ``openline serve`` nodes and M ``openline worker`` processes
(``tests/scale/node.py``: the real command paths with scripted providers) on a fresh
PostgreSQL database and a unique Redis key prefix, behind haproxy on loopback with
ephemeral ports. Recordings go to one shared directory. Every process logs to its own
file; ``Cluster.logs()`` shows their tails when a test fails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import websockets
from redis.asyncio import Redis

from tests.conftest import PG_ADMIN_DSN, TEST_KEY, free_port
from tests.scale.redis_support import REDIS_URL, drop_keys, unique_prefix

ROOT = Path(__file__).resolve().parents[2]
RATE = 16_000


@dataclass
class Proc:
    """One process of the cluster."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Cluster:
    """Nodes, workers and the balancer of one test deployment."""

    root: Path
    nodes: int = 3
    workers: int = 2
    lease_s: float = 3.0
    extra_env: dict[str, str] = field(default_factory=dict)
    #: how a node is started (benchmarks use their instrumented launcher)
    node_args: tuple[str, ...] = ("-m", "tests.scale.node", "serve", "--role", "all")
    db_name: str = field(default_factory=lambda: "openline_scale_" + uuid.uuid4().hex[:10])
    prefix: str = field(default_factory=lambda: unique_prefix("cluster"))
    procs: dict[str, Proc] = field(default_factory=dict)
    balancer_port: int = 0

    # ----- addresses ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.balancer_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.balancer_port}"

    @property
    def database_url(self) -> str:
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{self.db_name}"

    @property
    def pg_dsn(self) -> str:
        return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{self.db_name}"

    @property
    def recordings(self) -> Path:
        return self.root / "recordings"

    @property
    def api_key(self) -> str:
        return TEST_KEY

    def node(self, i: int) -> Proc:
        return self.procs[f"node-{i}"]

    def worker(self, i: int) -> Proc:
        return self.procs[f"worker-{i}"]

    def node_of(self, node_id: str) -> Proc:
        return self.procs[node_id]

    # ----- lifecycle ----------------------------------------------------------------------
    def env(self, name: str, port: int | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
        env.update({
            "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
            "OPENLINE_DATABASE_URL": self.database_url,
            "OPENLINE_REDIS_URL": REDIS_URL, "OPENLINE_REDIS_PREFIX": self.prefix,
            "OPENLINE_NODE_ID": name, "OPENLINE_DATA_DIR": str(self.root / name),
            "OPENLINE_RECORDINGS_URL": str(self.recordings),
            "OPENLINE_SECRET_KEY": "scale-secret-" + self.prefix,
            "OPENLINE_API_KEY": TEST_KEY, "OPENLINE_PUBLIC_URL": self.url,
            "OPENLINE_HOST": "127.0.0.1", "OPENLINE_PORT": str(port or 0),
            "OPENLINE_CONVERSATION_LEASE_S": str(self.lease_s),
            "OPENLINE_JOB_LEASE_S": "3", "OPENLINE_JOB_POLL_S": "0.2",
            "OPENLINE_JOB_RETRY_BASE_S": "0.5", "OPENLINE_JOB_RETRY_MAX_S": "2",
            "OPENLINE_ALLOW_PRIVATE_URLS": "true", "OPENLINE_DRAIN_TIMEOUT_S": "30",
            "OPENLINE_LOG_LEVEL": "warning", "OPENLINE_WEBHOOK_TIMEOUT_S": "30",
        })
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str], port: int | None = None) -> Proc:
        log = self.root / f"{name}.log"
        out = log.open("ab")
        popen = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=self.env(name, port),
                                 stdout=out, stderr=subprocess.STDOUT)
        out.close()
        proc = Proc(name, popen, log, port)
        self.procs[name] = proc
        return proc

    async def start(self) -> Cluster:
        self.recordings.mkdir(parents=True, exist_ok=True)
        await _admin(f'CREATE DATABASE "{self.db_name}"')
        # One process migrates and bootstraps first: nodes starting together then find
        # the schema and the default workspace in place.
        init = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "openline.cli.main", "keys", "list"],
            cwd=ROOT, env=self.env("init"), capture_output=True, timeout=120)
        assert init.returncode == 0, init.stderr.decode()[-2000:]
        self.balancer_port = free_port()
        for i in range(1, self.nodes + 1):
            self.start_node(i)
        for i in range(1, self.workers + 1):
            self._spawn(f"worker-{i}", ["-m", "tests.scale.node", "worker"])
        await self.wait_ready()
        self._spawn_balancer()
        await self._wait_balancer()
        return self

    def start_node(self, i: int) -> Proc:
        port = free_port()
        return self._spawn(f"node-{i}", list(self.node_args), port)

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            for proc in list(self.procs.values()):
                if proc.name.startswith("node-"):
                    await _until(lambda p=proc: _ready(http, p), deadline, proc, self)
        redis = Redis.from_url(REDIS_URL)
        try:
            for proc in self.procs.values():
                if proc.name.startswith("worker-"):
                    key = f"{self.prefix}:nodes:{proc.name}"

                    async def present(k: str = key) -> bool:
                        return bool(await redis.exists(k))

                    await _until(present, deadline, proc, self)
        finally:
            await redis.aclose()

    def _spawn_balancer(self) -> None:
        servers = "\n".join(f"  server {p.name} 127.0.0.1:{p.port} check"
                            for p in self.procs.values() if p.name.startswith("node-"))
        config = self.root / "haproxy.cfg"
        config.write_text(HAPROXY.format(port=self.balancer_port, servers=servers))
        log = self.root / "haproxy.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=out,
                                     stderr=subprocess.STDOUT)
        self.procs["haproxy"] = Proc("haproxy", popen, log, self.balancer_port)

    async def _wait_balancer(self) -> None:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=2) as http:
            await _until(lambda: _ready(http, self.procs["haproxy"]), deadline,
                         self.procs["haproxy"], self)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.procs[name].popen.send_signal(sig)

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.alive():
                proc.popen.send_signal(signal.SIGCONT)
                proc.popen.send_signal(signal.SIGINT if proc.name != "haproxy"
                                       else signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.to_thread(proc.popen.wait, 20)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                await asyncio.to_thread(proc.popen.wait, 5)
        redis = Redis.from_url(REDIS_URL)
        try:
            await drop_keys(redis, f"{self.prefix}:*")
            await drop_keys(redis, f"saq:*{self.prefix}*")
        finally:
            await redis.aclose()
        await _admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def logs(self, lines: int = 30) -> str:
        out = []
        for proc in self.procs.values():
            if proc.log.exists():
                tail = proc.log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {proc.name} (rc={proc.popen.poll()}) ---\n" + "\n".join(tail))
        return "\n".join(out)

    # ----- the database, for assertions -------------------------------------------------
    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.pg_dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def conversation(self, conversation_id: str) -> asyncpg.Record:
        [row] = await self.sql("SELECT * FROM conversations WHERE id = $1", conversation_id)
        return row

    async def wait_ended(self, conversation_id: str, within_s: float = 30.0
                         ) -> asyncpg.Record:
        deadline = time.monotonic() + within_s
        while True:
            row = await self.conversation(conversation_id)
            if row["ended_at"] is not None or time.monotonic() > deadline:
                return row
            await asyncio.sleep(0.2)


HAPROXY = """global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
frontend openline
  bind 127.0.0.1:{port}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
  default-server inter 300ms fall 1 rise 1
{servers}
"""


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _ready(http: httpx.AsyncClient, proc: Proc) -> bool:
    try:
        return (await http.get(f"{proc.url}/ready")).status_code == 200
    except httpx.HTTPError:
        return False


async def _until(check: Any, deadline: float, proc: Proc, cluster: Cluster) -> None:
    while not await check():
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not become ready\n{cluster.logs()}")
        await asyncio.sleep(0.2)


# ----- a caller on the STS socket ----------------------------------------------------------
def tone(ms: int) -> np.ndarray:
    t = np.arange(int(RATE * ms / 1000)) / RATE
    return (np.sin(2 * np.pi * 300 * t) * 9000).astype(np.int16)


def silence(ms: int) -> np.ndarray:
    return np.zeros(int(RATE * ms / 1000), dtype=np.int16)


class Caller:
    """A raw STS client: config, audio at real-time pace, messages collected."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.conversation_id = ""

    @classmethod
    async def connect(cls, base_ws_url: str, *, query: str = "", **config: Any) -> Caller:
        ws = await websockets.connect(f"{base_ws_url}/v1/sts/ws{query}", additional_headers={
            "Authorization": f"Bearer {TEST_KEY}"}, max_size=None)
        caller = cls(ws)
        if query:
            return caller
        await ws.send(json.dumps({"type": "config", "input_format": "pcm_16000",
                                  "output_format": "pcm_16000", "welcome_message": "",
                                  **config}))
        first = await caller.until("conversation_created", "error")
        if first["type"] == "conversation_created":
            caller.conversation_id = first["conversation_id"]
        return caller

    async def until(self, *types: str, within: float = 15.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                message = json.loads(await self.ws.recv())
                self.seen.append(message)
                if message.get("type") in types:
                    return message

    async def send_audio(self, samples: np.ndarray, realtime: bool = True) -> None:
        step = RATE // 50
        for i in range(0, samples.size, step):
            chunk = base64.b64encode(samples[i:i + step].tobytes()).decode()
            await self.ws.send(json.dumps({"type": "audio_chunk", "audio": chunk}))
            await asyncio.sleep(0.02 if realtime else 0)

    async def turn(self) -> None:
        """Speak once and wait until the whole reply was sent."""
        await self.send_audio(np.concatenate([tone(600), silence(900)]))
        await self.until("assistant_finished_speaking")

    def spoken(self) -> str:
        return " ".join(m["text"] for m in self.seen
                        if m.get("type") == "audio_chunk" and m.get("text"))

    async def close(self) -> None:
        await self.ws.close()
