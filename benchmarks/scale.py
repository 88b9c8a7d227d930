"""Openline on several nodes: capacity per node count, fail-over time, post-call jobs.

A script, not a timed test. It runs the multi-node harness of the tests
(``tests/scale/harness.py``: nodes on a fresh PostgreSQL database and a unique Redis
prefix, haproxy in front) with instant fake providers, and measures:

* ``capacity``: for 1, 2 and 3 nodes, conversations per node (streamed in real time, the
  client of ``benchmarks/concurrency.py``, spread evenly over the nodes directly) while
  every node's event-loop lag p99 stays under 20 ms (the ``_common.py`` launcher's probe);
* ``failover``: time from ``kill -9`` of a node with live calls to all of them stored as
  ended (``error``) by the others, for a given lease;
* ``jobs``: post-call throughput (jobs/s, post-call + webhook jobs of seeded conversations)
  and end-to-end post-call latency (hang-up to the ``conversation.ended`` webhook arriving
  at a local receiver), with 1 and 2 workers.

Usage::

    .venv/bin/python benchmarks/scale.py capacity --per-node 10,20,30 --duration 12
    .venv/bin/python benchmarks/scale.py failover --calls 10 --lease 10
    .venv/bin/python benchmarks/scale.py jobs --jobs 200 --calls 5

Everything stays on 127.0.0.1; counts, durations and waits are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "benchmarks")]

from _common import ServerHandle, bench_stats, log, percentile, summary  # noqa: E402
from concurrency import build_script, conversation  # noqa: E402
from tests.scale.harness import Caller, Cluster  # noqa: E402
from tests.scale.redis_support import REDIS_URL  # noqa: E402
from tests.seed import aseed_conversations  # noqa: E402

from openline.postcall.queue_saq import SaqJobQueue  # noqa: E402
from openline.services.postcall import CONVERSATION_JOB  # noqa: E402

LAUNCHER = (str(ROOT / "benchmarks" / "_common.py"), "serve", "--providers", "fake")
LAG_TARGET_MS = 20.0


async def _cluster(root: Path, nodes: int, workers: int, **kw: Any) -> Cluster:
    cluster = Cluster(root, nodes=nodes, workers=workers, node_args=LAUNCHER, **kw)
    await cluster.start()
    await cluster.sql("UPDATE workspaces SET settings = jsonb_set(settings::jsonb, "
                      "'{max_concurrent_conversations}', '10000')::json")
    return cluster


# --------------------------------------------------------------------------- capacity
async def capacity(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    script = build_script(args.duration)
    for nodes in args.nodes:
        with tempfile.TemporaryDirectory() as tmp:
            cluster = await _cluster(Path(tmp), nodes, 0)
            try:
                handles = [ServerHandle(cluster.node(i).url, cluster.api_key, 0)
                           for i in range(1, nodes + 1)]
                for per_node in args.per_node:
                    row = await _load(handles, script, per_node, args)
                    rows.append({"nodes": nodes, **row})
                    log(json.dumps(rows[-1]))
                    if row["worst_p99_ms"] > LAG_TARGET_MS:
                        break
            finally:
                await cluster.stop()
    return rows


async def _load(handles: list[ServerHandle], script: Any, per_node: int,
                args: argparse.Namespace) -> dict[str, Any]:
    for h in handles:
        await asyncio.to_thread(bench_stats, h, reset=True)
    total = per_node * len(handles)
    delays = [args.ramp * i / total for i in range(total)]
    clients = await asyncio.gather(*(conversation(handles[i % len(handles)], script, d)
                                     for i, d in enumerate(delays)))
    steady = (args.ramp + 1.0, args.duration - 1.0)
    p99s = []
    for h in handles:
        stats = await asyncio.to_thread(bench_stats, h)
        lags = [lag for t, lag in stats["lag_samples"] if steady[0] <= t <= steady[1]]
        p99s.append(summary(lags)["p99"])
    v2v = [v for c in clients for v in c.v2v_ms]
    return {"per_node": per_node, "total": total, "ok": sum(c.ok for c in clients),
            "p99_by_node_ms": [round(p, 1) for p in p99s], "worst_p99_ms": round(max(p99s), 1),
            "v2v_p50_ms": round(percentile(v2v, 50), 1)}


# --------------------------------------------------------------------------- fail-over
async def failover(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = await _cluster(Path(tmp), 3, 0, lease_s=args.lease)
        try:
            callers = [await Caller.connect(cluster.node(3).ws_url) for _ in range(args.calls)]
            ids = [c.conversation_id for c in callers]
            await asyncio.sleep(1.0)
            cluster.kill("node-3")
            killed = time.monotonic()
            pending = set(ids)
            while pending and time.monotonic() - killed < 4 * args.lease + 30:
                rows = await cluster.sql(
                    "SELECT id FROM conversations WHERE id = ANY($1) AND ended_at IS NOT NULL",
                    list(pending))
                pending -= {r["id"] for r in rows}
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - killed
            for c in callers:
                c.ws.transport.abort()
            return {"calls": args.calls, "lease_s": args.lease, "unclosed": len(pending),
                    "kill_to_all_ended_s": round(elapsed, 2)}
        finally:
            await cluster.stop()


# --------------------------------------------------------------------------- jobs
class _Receiver(BaseHTTPRequestHandler):
    arrivals: dict[str, float] = {}
    count = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        _Receiver.count += 1
        if body.get("event_type") == "conversation.ended":
            conv = (body.get("data") or {}).get("conversation") or body.get("data") or {}
            _Receiver.arrivals.setdefault(str(conv.get("id")), time.monotonic())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


async def jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    rows = []
    try:
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                cluster = await _cluster(Path(tmp), 1, workers)
                try:
                    rows.append({"workers": workers,
                                 **await _throughput(cluster, url, args.jobs),
                                 **await _postcall_latency(cluster, args.calls)})
                    log(json.dumps(rows[-1]))
                finally:
                    await cluster.stop()
    finally:
        receiver.shutdown()
    return rows


async def _throughput(cluster: Cluster, url: str, count: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=cluster.url, timeout=10, headers={
            "Authorization": f"Bearer {cluster.api_key}"}) as http:
        (await http.post("/v1/webhook_endpoints", json={"url": url})).raise_for_status()
    ids = await aseed_conversations(cluster.database_url, "main", [{}] * count)
    from redis.asyncio import Redis
    redis = Redis.from_url(REDIS_URL)
    queue = SaqJobQueue(redis, cluster.prefix)
    try:
        start = time.monotonic()
        for conversation_id in ids:
            await queue.enqueue(CONVERSATION_JOB, {"conversation_id": conversation_id},
                                dedupe_key=f"postcall:{conversation_id}")
        while time.monotonic() - start < 600:  # polls the shared queue (another process)
            if not await queue.unfinished():
                break
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - start
    finally:
        await queue.close()
        await redis.aclose()
    # each conversation: its post-call job and one webhook delivery per event sent
    deliveries = await cluster.sql("SELECT count(*) AS n FROM webhook_deliveries")
    done = count + int(deliveries[0]["n"])
    return {"jobs": done, "jobs_per_s": round(done / elapsed, 1),
            "conversations_per_s": round(count / elapsed, 1)}


async def _postcall_latency(cluster: Cluster, calls: int) -> dict[str, Any]:
    latencies = []
    for _ in range(calls):
        caller = await Caller.connect(cluster.ws_url, stream_ahead_of_real_time=True)
        await caller.turn()
        hung_up = time.monotonic()
        await caller.close()
        deadline = hung_up + 60
        while time.monotonic() < deadline:  # the receiver runs on its own thread
            if caller.conversation_id in _Receiver.arrivals:
                break
            await asyncio.sleep(0.02)
        if caller.conversation_id in _Receiver.arrivals:
            latencies.append((_Receiver.arrivals[caller.conversation_id] - hung_up) * 1000)
    return {"postcall_ms": summary(latencies)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/scale.py")
    sub = parser.add_subparsers(dest="what", required=True)
    cap = sub.add_parser("capacity")
    cap.add_argument("--nodes", type=lambda s: [int(x) for x in s.split(",")],
                     default=[1, 2, 3])
    cap.add_argument("--per-node", type=lambda s: [int(x) for x in s.split(",")],
                     default=[10, 20, 30])
    cap.add_argument("--duration", type=float, default=12.0)
    cap.add_argument("--ramp", type=float, default=2.0)
    fo = sub.add_parser("failover")
    fo.add_argument("--calls", type=int, default=10)
    fo.add_argument("--lease", type=float, default=10.0)
    jb = sub.add_parser("jobs")
    jb.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 2])
    jb.add_argument("--jobs", type=int, default=200)
    jb.add_argument("--calls", type=int, default=5)
    args = parser.parse_args(argv)
    run = {"capacity": capacity, "failover": failover, "jobs": jobs}[args.what]
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
