"""The saq queue (Redis) against the queue conformance suite, plus what only it has."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from openline.postcall.queue import JobQueue
from openline.postcall.queue_saq import SaqJobQueue
from openline.store.tables_postcall import DONE, FAILED, QUEUED, RUNNING
from tests.postcall.queue_conformance import JobView, QueueBackend, QueueConformance
from tests.scale.redis_support import REDIS_URL, drop_keys, unique_prefix

STATUS = {"queued": QUEUED, "active": RUNNING, "complete": DONE, "failed": FAILED}


class SaqBackend:
    """``QueueBackend`` over one saq queue name; each ``open()`` has its own connections."""

    supports_dedupe = True

    def __init__(self) -> None:
        self.name = unique_prefix("queue")
        self._clients: list[Redis] = []
        self._queues: list[SaqJobQueue] = []

    async def open(self) -> JobQueue:
        client = Redis.from_url(REDIS_URL)
        self._clients.append(client)
        queue = SaqJobQueue(client, self.name)
        self._queues.append(queue)
        return queue

    async def view(self, job_id: str) -> JobView | None:
        queue = SaqJobQueue(self._clients[0] if self._clients else Redis.from_url(REDIS_URL),
                            self.name)
        job = await queue.job(job_id)
        if job is None:
            return None
        return JobView(STATUS[job.status.value], job.attempts, job.error)

    async def close(self) -> None:
        for queue in self._queues:
            await queue.close()
        if self._clients:
            await drop_keys(self._clients[0], f"saq:*{self.name}*")
        for client in self._clients:
            await client.aclose()


class TestSaqJobQueue(QueueConformance):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[QueueBackend]:
        backend = SaqBackend()
        yield backend
        await backend.close()


async def test_saq_sees_the_queue_and_finished_jobs_keep_their_dedupe_key() -> None:
    backend = SaqBackend()
    try:
        queue = await backend.open()
        assert isinstance(queue, SaqJobQueue)
        first = await queue.enqueue("count", {"n": 1}, dedupe_key="webhook:e1:ended:1")
        await queue.enqueue("count", {"n": 2}, delay_s=30)
        info = await queue.saq.info()  # saq's own view of the same keys
        assert (info["queued"], info["scheduled"]) == (1, 1)
        waiting, age = await queue.depth()
        assert waiting == 1 and 0 <= age < 5
        [job] = await queue.claim("w", lease_s=5)
        assert job.id == first and await queue.complete(job.id, "w")
        # A producer retried after a crash (the same occurrence): nothing new is queued.
        assert await queue.enqueue("count", {"n": 1}, dedupe_key="webhook:e1:ended:1") is None
        stored = await queue.job(str(first))
        assert stored is not None and stored.status.value == "complete"
        await asyncio.sleep(0)
    finally:
        await backend.close()


async def test_a_lost_wake_subscription_is_renewed_on_the_next_wait() -> None:
    # Its own client, named, so that no other test's subscription is dropped with it.
    name = unique_prefix("wake")
    client = Redis.from_url(REDIS_URL, client_name=name)
    queue = SaqJobQueue(client, unique_prefix("queue"))
    try:
        await queue.wait_for_work(0.05)  # subscribes
        listener = queue._listener
        assert listener is not None and not listener.done()
        # Redis drops the subscriber (a restart, a failover, ``CLIENT KILL``).
        subscriber = [c for c in await client.client_list(_type="pubsub") if c["name"] == name]
        assert len(subscriber) == 1
        assert await queue.redis.client_kill_filter(_id=subscriber[0]["id"]) == 1
        await asyncio.wait_for(listener, 5)  # the relay ends instead of spinning
        waiter = asyncio.create_task(queue.wait_for_work(10))
        await asyncio.sleep(0.1)
        assert queue._listener is not listener and not queue._listener.done()
        await queue.enqueue("count", {"n": 1})
        await asyncio.wait_for(waiter, 2)  # woken by the new subscription, not the timeout
    finally:
        await queue.close()
        await drop_keys(client, f"saq:*{queue.saq.name}*")
        await client.aclose()
