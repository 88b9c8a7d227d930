"""Three ``openline serve`` nodes and two ``openline worker`` processes on PostgreSQL and
Redis behind haproxy: calls, controls and limits across nodes, crashes of a node and of a
worker, signed links from any node, the SIGTERM drain.

One cluster serves every case (module-scoped); the cases run in file order and the last
ones take processes down (a worker, then a node drained, then a node killed).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
import websockets
from redis.asyncio import Redis

from openline.audio.wav import read_wav
from openline.postcall.queue_saq import SaqJobQueue
from openline.services.live_registry_redis import RedisLiveRegistry
from openline.transports import base as tb
from tests.conftest import TEST_KEY, free_port
from tests.scale.harness import Caller, Cluster, silence
from tests.scale.redis_support import REDIS_URL

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        await cluster.start()
        yield cluster
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        await cluster.stop()


@pytest.fixture(scope="module")
async def peer(cluster: Cluster) -> AsyncIterator[RedisLiveRegistry]:
    """A fourth participant on the control channel: what any node does for a dialect's
    control or watch route (``LiveService.control`` / ``watch``)."""
    redis = Redis.from_url(REDIS_URL)
    # It announces an address where nothing listens (a reconnect relay to it must fail).
    registry = RedisLiveRegistry(redis, "test-peer", prefix=cluster.prefix,
                                 url=f"http://127.0.0.1:{free_port()}")
    await registry.start()
    yield registry
    await registry.stop()
    await redis.aclose()


def _api(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=10,
                             headers={"Authorization": f"Bearer {TEST_KEY}"})


async def _owner(cluster: Cluster, conversation_id: str) -> str:
    return str((await cluster.conversation(conversation_id))["owner_node"])


def _other_node(cluster: Cluster, owner: str) -> str:
    return next(name for name in ("node-1", "node-2", "node-3")
                if name != owner and cluster.procs[name].alive())


async def test_cancel_through_another_node(cluster: Cluster) -> None:
    caller = await Caller.connect(cluster.ws_url)  # through the balancer
    conversation_id = caller.conversation_id
    owner = await _owner(cluster, conversation_id)
    other = cluster.node_of(_other_node(cluster, owner))
    async with _api(other.url) as http:
        r = await http.post(f"/v1/conversations/{conversation_id}/cancel")
        assert r.status_code == 200 and r.json() == {"success": True}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await caller.until("never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4200
        row = await cluster.wait_ended(conversation_id)
        assert row["ended_by"] == "user_canceled" and row["owner_node"] == owner
        again = await http.post(f"/v1/conversations/{conversation_id}/cancel")
        assert again.status_code == 409


async def test_controls_and_watch_from_another_node(cluster: Cluster,
                                                    peer: RedisLiveRegistry) -> None:
    caller = await Caller.connect(cluster.ws_url, stream_ahead_of_real_time=True)
    conversation_id = caller.conversation_id
    owner = await _owner(cluster, conversation_id)
    watched: list[dict[str, Any]] = []

    async def watch() -> None:
        async for event in peer.watch(conversation_id, owner):
            watched.append(event)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.3)  # the owner starts forwarding
    await peer.control(conversation_id, owner, tb.Say("Hello from another node."))
    await caller.until("assistant_finished_speaking")
    assert caller.spoken() == "Hello from another node."
    with pytest.raises(tb.ControlRejected) as rejected:  # the owner's refusal comes back
        await peer.control(conversation_id, owner, tb.ToolCallOutput("nope", "x"))
    assert rejected.value.code == "unknown_tool_call"
    await caller.turn()  # the caller speaks; the watcher on another node sees it
    await caller.close()
    await asyncio.wait_for(watcher, 15)  # the stream ends with the call
    types = [e["type"] for e in watched]
    assert "InputText" in types and "AudioOut" in types
    assert any(e["type"] == "InputText" and e["text"] == "hello" for e in watched)
    assert (await cluster.wait_ended(conversation_id))["ended_by"] == "user"


async def test_a_reconnect_reaching_another_node_is_relayed_to_the_owner(
        cluster: Cluster) -> None:
    owner = cluster.node(1)
    caller = await Caller.connect(owner.ws_url, stream_ahead_of_real_time=True)
    conversation_id = caller.conversation_id
    caller.ws.transport.abort()  # the network drops: the call waits for its peer
    back = await Caller.connect(cluster.node(2).ws_url,
                                query=f"?reconnect_conv_id={conversation_id}")
    assert (await back.until("conversation_reconnected"))["type"] == "conversation_reconnected"
    await back.ws.send(json.dumps({"type": "say", "text": "Relayed back to you."}))
    await back.until("assistant_finished_speaking")
    assert back.spoken() == "Relayed back to you."
    await back.close()
    row = await cluster.wait_ended(conversation_id)
    assert (row["ended_by"], row["owner_node"]) == ("user", "node-1")


async def test_a_reconnect_to_an_owner_nobody_can_reach_gets_4801(
        cluster: Cluster, peer: RedisLiveRegistry) -> None:
    caller = await Caller.connect(cluster.node(1).ws_url, stream_ahead_of_real_time=True)
    conversation_id = caller.conversation_id
    caller.ws.transport.abort()
    # For a moment the call belongs to a live node that cannot be reached (the test's peer).
    await cluster.sql("UPDATE conversations SET owner_node = 'test-peer' WHERE id = $1",
                      conversation_id)
    try:
        elsewhere = await Caller.connect(cluster.node(2).ws_url,
                                         query=f"?reconnect_conv_id={conversation_id}")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await elsewhere.until("never")
    finally:
        await cluster.sql("UPDATE conversations SET owner_node = 'node-1' WHERE id = $1",
                          conversation_id)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4801, "reconnect_other_node")
    back = await Caller.connect(cluster.node(1).ws_url,
                                query=f"?reconnect_conv_id={conversation_id}")
    assert (await back.until("conversation_reconnected"))["type"] == "conversation_reconnected"
    await back.close()
    assert (await cluster.wait_ended(conversation_id))["ended_by"] == "user"


async def test_the_workspace_limit_holds_across_nodes_under_a_burst(cluster: Cluster) -> None:
    limit, callers = 3, 9  # 9 = 2 per node directly + 3 through haproxy
    await cluster.sql("UPDATE workspaces SET settings = jsonb_set(settings::jsonb, "
                      "'{max_concurrent_conversations}', to_jsonb($1::int))::json", limit)
    try:
        # Two callers at each node directly and three through the balancer, all at once.
        urls = [cluster.node(i).ws_url for i in (1, 2, 3)] * 2 + [cluster.ws_url] * 3
        results = await asyncio.gather(*(Caller.connect(url) for url in urls[:callers]))
        admitted = [c for c in results if c.conversation_id]
        refused = [c.seen[-1]["error"]["code"] for c in results if not c.conversation_id]
        assert len(admitted) == limit and refused == ["concurrency_limit_reached"] * 6
        for c in results:
            await c.close()
        for c in admitted:
            await cluster.wait_ended(c.conversation_id)
    finally:
        await cluster.sql("UPDATE workspaces SET settings = (settings::jsonb "
                          "- 'max_concurrent_conversations')::json")


async def test_signed_recording_links_work_from_any_node(cluster: Cluster) -> None:
    caller = await Caller.connect(cluster.node(3).ws_url, stream_ahead_of_real_time=True)
    await caller.turn()
    await caller.close()
    await cluster.wait_ended(caller.conversation_id)
    async with _api(cluster.node(1).url) as http:
        body = (await http.get(f"/v1/conversations/{caller.conversation_id}")).json()
    link = urlparse(body["conversation"]["audio_url"])
    assert f"{link.scheme}://{link.netloc}" == cluster.url  # the balancer's address
    downloads = []
    async with httpx.AsyncClient(timeout=10) as http:
        for i in (1, 2, 3):
            r = await http.get(f"{cluster.node(i).url}{link.path}?{link.query}")
            assert r.status_code == 200, r.text
            downloads.append(gzip.decompress(r.content))  # wav.gz (the header has a time)
        tampered = link.query.replace("signature=", "signature=0")
        assert (await http.get(f"{cluster.url}{link.path}?{tampered}")).status_code == 403
    assert downloads[0] == downloads[1] == downloads[2] and downloads[0][:4] == b"RIFF"


async def test_ready_and_metrics_on_every_node(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for i in (1, 2, 3):
            ready = (await http.get(f"{cluster.node(i).url}/ready")).json()
            assert ready["status"] == "ready"
            assert ready["checks"] == {"database": True, "models": True,
                                       "accepting_calls": True, "redis": True}
        text = (await http.get(f"{cluster.node(3).url}/metrics")).text
    assert "openline_live_calls 0.0" in text
    for stage in ("voice_to_voice", "stt", "tts_first_audio"):
        assert f'openline_turn_stage_seconds_count{{stage="{stage}"}}' in text
    assert "openline_job_queue_depth" in text
    assert "openline_webhook_delivery_failures_total" in text


class _Target(BaseHTTPRequestHandler):
    """Webhook receiver: holds the first ``conversation.ended`` of the watched call (the
    worker sending it is killed meanwhile), answers every other delivery at once."""

    watched = ""
    deliveries: list[tuple[str, str]] = []  # (webhook-id, event type)
    first_held = threading.Event()
    release = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        data = json.loads(body)
        mine = self.watched and self.watched in body.decode()
        if mine:
            _Target.deliveries.append((self.headers["webhook-id"], str(data.get("event_type"))))
        if (mine and data.get("event_type") == "conversation.ended"
                and not _Target.first_held.is_set()):
            _Target.first_held.set()
            _Target.release.wait(30)  # the worker dies while waiting for this answer
            return
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    _Target.release.set()
    server.shutdown()


async def test_a_worker_killed_mid_job_its_job_finishes_on_the_other_once(
        cluster: Cluster, webhook_target: str) -> None:
    async with _api(cluster.url) as http:
        r = await http.post("/v1/webhook_endpoints", json={"url": webhook_target})
        assert r.status_code == 201, r.text
    cluster.kill("worker-2", signal.SIGSTOP)  # worker-1 takes the jobs
    caller = await Caller.connect(cluster.ws_url, stream_ahead_of_real_time=True)
    _Target.watched = caller.conversation_id
    await caller.turn()
    await caller.close()
    await cluster.wait_ended(caller.conversation_id)
    assert await asyncio.to_thread(_Target.first_held.wait, 20), cluster.logs()
    cluster.kill("worker-1")  # kill -9, mid-delivery
    cluster.kill("worker-2", signal.SIGCONT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        delivered = await cluster.sql(
            "SELECT message_id, success FROM webhook_deliveries WHERE event_type = $1 "
            "AND success", "conversation.ended")
        if delivered:
            break
        await asyncio.sleep(0.3)
    ended = [webhook_id for webhook_id, kind in _Target.deliveries
             if kind == "conversation.ended"]
    assert len(ended) >= 2 and len(set(ended)) == 1, _Target.deliveries  # same webhook-id
    assert [row["message_id"] for row in delivered] == [ended[0]]  # one success recorded
    row = await cluster.conversation(caller.conversation_id)
    assert row["post_call_transcript"] is not None
    # The post-call job (transcripts, summary) ran once; only the delivery ran again.
    redis = Redis.from_url(REDIS_URL)
    try:
        queue = SaqJobQueue(redis, cluster.prefix)
        postcall = await queue.job(f"postcall:{caller.conversation_id}")
        webhook_keys = [k.decode() async for k in redis.scan_iter(
            f"saq:job:{cluster.prefix}:webhook:*:conversation.ended:*")]
        webhook_jobs = [await queue.job(k.split(f"{cluster.prefix}:", 1)[1])
                        for k in webhook_keys]
    finally:
        await redis.aclose()
    assert postcall is not None and (postcall.status.value, postcall.attempts) == ("complete", 1)
    mine = [j for j in webhook_jobs if j is not None and caller.conversation_id in str(j.kwargs)]
    assert [(j.status.value, j.attempts) for j in mine] == [("complete", 2)]


async def test_sigterm_drains_a_node(cluster: Cluster) -> None:
    node = cluster.node(2)
    caller = await Caller.connect(node.ws_url, stream_ahead_of_real_time=True)
    node.popen.send_signal(signal.SIGTERM)
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(50):
            r = await http.get(f"{node.url}/ready")
            if r.status_code == 503:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 503 and r.json()["checks"]["accepting_calls"] is False
    late = await Caller.connect(node.ws_url)  # no new calls on a draining node
    assert late.seen[-1]["error"]["code"] == "node_draining"
    await asyncio.sleep(1.0)  # haproxy's health check (every 300 ms) takes it out
    through_balancer = [await Caller.connect(cluster.ws_url) for _ in range(3)]
    assert all(c.conversation_id for c in through_balancer)
    assert {await _owner(cluster, c.conversation_id) for c in through_balancer} <= {
        "node-1", "node-3"}
    for c in through_balancer:
        await c.close()
    await caller.turn()  # the live call goes on during the drain
    assert caller.spoken() == "Okay."
    await caller.close()
    assert await asyncio.to_thread(node.popen.wait, 20) == 0
    assert (await cluster.wait_ended(caller.conversation_id))["ended_by"] == "user"


async def test_kill_9_of_the_owner_node(cluster: Cluster) -> None:
    node = cluster.node(3)
    caller = await Caller.connect(node.ws_url, stream_ahead_of_real_time=True)
    conversation_id = caller.conversation_id
    started = time.monotonic()
    await caller.turn()  # 1.5 s of caller audio
    await caller.send_audio(silence(2500))  # more audio, flushed to the shared spool
    sent_s, audio_s = time.monotonic() - started, 1.5 + 2.5
    cluster.kill("node-3")
    killed = time.monotonic()
    row = await cluster.wait_ended(conversation_id, within_s=30)
    closed_after = time.monotonic() - killed
    assert row["ended_by"] == "error", cluster.logs()
    assert closed_after < 4 * cluster.lease_s + 5
    items = await cluster.sql("SELECT role, live_transcript FROM conversation_items "
                              "WHERE conversation_id = $1 ORDER BY item_idx", conversation_id)
    assert [(i["role"], i["live_transcript"]) for i in items] == [
        ("user", "hello"), ("assistant", "Okay.")]
    path = Path(row["recording_path"])
    assert path.parent == cluster.recordings
    samples, rate = read_wav(path)
    recorded_s = samples.shape[0] / rate
    # Everything up to the last flushed second (flushes come every second), no more than
    # the call lasted.
    assert audio_s - 1.5 <= recorded_s <= sent_s + 0.5
    assert np.abs(samples[:, 0]).max() > 1000  # the caller's tone is in it
    caller.ws.transport.abort()
