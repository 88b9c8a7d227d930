"""The job queue for many nodes: saq's Redis queue, claimed with per-job leases.

Jobs are saq jobs (``saq.Job``) stored in saq's Redis layout - ``saq:job:<queue>:<key>``
records, the ``incomplete`` sorted set (score: when a delayed job is due), the ``queued``
and ``active`` lists - so saq's tooling (``Queue.info``, ``count``, ``job``, its web UI)
sees Openline's queue as it is. Openline's ``Worker`` drives it through ``JobQueue``
(see ``postcall/queue.py`` for the contract). Each step is one Lua script, so it is atomic
across every node and worker:

* ``enqueue`` stores the job unless a job with that key (the ``dedupe_key``) is stored:
  finished jobs are kept ``KEEP_FINISHED_S`` (a week), so a retried producer - a
  post-call job re-run after a crash, re-publishing its webhooks - queues nothing new.
* ``claim`` promotes due delayed jobs, re-queues jobs whose lease ran out (saq's
  "stuck" rule: ``touched`` older than ``heartbeat``; a job on its last attempt fails
  instead), then moves up to ``limit`` jobs from ``queued`` to ``active`` and stamps the
  claim: ``worker_id``, ``attempts + 1``, ``touched`` = now, ``heartbeat`` = the lease.
* ``extend``, ``complete``, ``fail`` and ``release`` act only while the caller's claim
  holds (``status`` active and ``worker_id`` the caller's).

saq's own ``schedule`` and ``sweep`` are not used: they are rate-limited by whole-second
locks (a sweep or schedule call within the last second is skipped) and ``sweep`` waits
for an abort acknowledgement from the (dead) worker; the scripts here do the same moves
within the claim, on the lease the claimer asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from redis.asyncio import Redis
from saq import Job, Status
from saq.queue.redis import RedisQueue

from openline.domain import ids
from openline.postcall.queue import JOB_ID_PREFIX, ClaimedJob

log = logging.getLogger(__name__)

#: finished jobs (and so their dedupe keys) are kept this long
KEEP_FINISHED_S = 7 * 24 * 3600

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
if tonumber(ARGV[2]) == 0 then redis.call('RPUSH', KEYS[3], KEYS[1]) end
redis.call('PUBLISH', KEYS[4], '1')
return 1
"""

_CLAIM = """
local now_s, now_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(0', now_s)) do
  redis.call('ZADD', KEYS[1], 0, id)
  redis.call('RPUSH', KEYS[2], id)
end
for _, id in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local raw = redis.call('GET', id)
  if not raw then
    redis.call('LREM', KEYS[3], 0, id)
    redis.call('ZREM', KEYS[1], id)
  else
    local job = cjson.decode(raw)
    local lease_ms = (tonumber(job['heartbeat']) or 0) * 1000
    if job['status'] == 'active' and now_ms - (tonumber(job['touched']) or 0) > lease_ms then
      job['worker_id'] = nil
      redis.call('LREM', KEYS[3], 0, id)
      if (tonumber(job['attempts']) or 0) >= (tonumber(job['retries']) or 1) then
        job['status'] = 'failed'
        job['error'] = ARGV[6]
        job['completed'] = now_ms
        redis.call('ZREM', KEYS[1], id)
        redis.call('SET', id, cjson.encode(job), 'PX', ARGV[7])
      else
        job['status'] = 'queued'
        redis.call('SET', id, cjson.encode(job))
        redis.call('RPUSH', KEYS[2], id)
      end
    end
  end
end
local claimed = {}
for _ = 1, tonumber(ARGV[5]) do
  local id = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
  if not id then break end
  local raw = redis.call('GET', id)
  if not raw then
    redis.call('LREM', KEYS[3], 0, id)
  else
    local job = cjson.decode(raw)
    job['status'] = 'active'
    job['worker_id'] = ARGV[3]
    job['attempts'] = (tonumber(job['attempts']) or 0) + 1
    job['started'] = now_ms
    job['touched'] = now_ms
    job['heartbeat'] = tonumber(ARGV[4])
    local encoded = cjson.encode(job)
    redis.call('SET', id, encoded)
    table.insert(claimed, encoded)
  end
end
return claimed
"""

#: the claim check every owner-only step starts with (KEYS[1]: job, ARGV[1]: worker)
_OWNED = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local job = cjson.decode(raw)
if job['status'] ~= 'active' or job['worker_id'] ~= ARGV[1] then return 0 end
local now_ms = tonumber(ARGV[2])
"""

_EXTEND = _OWNED + """
job['touched'] = now_ms
job['heartbeat'] = tonumber(ARGV[3])
redis.call('SET', KEYS[1], cjson.encode(job))
return 1
"""

_COMPLETE = _OWNED + """
job['status'] = 'complete'
job['completed'] = now_ms
job['error'] = nil
redis.call('LREM', KEYS[2], 0, KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
redis.call('SET', KEYS[1], cjson.encode(job), 'PX', ARGV[3])
return 1
"""

_FAIL = _OWNED + """
job['error'] = ARGV[4]
redis.call('LREM', KEYS[2], 0, KEYS[1])
if ARGV[5] == '' then
  job['status'] = 'failed'
  job['completed'] = now_ms
  redis.call('ZREM', KEYS[3], KEYS[1])
  redis.call('SET', KEYS[1], cjson.encode(job), 'PX', ARGV[3])
  return 1
end
job['status'] = 'queued'
job['worker_id'] = nil
local due = tonumber(ARGV[6]) + tonumber(ARGV[5])
if tonumber(ARGV[5]) <= 0 then
  job['scheduled'] = 0
  redis.call('ZADD', KEYS[3], 0, KEYS[1])
  redis.call('RPUSH', KEYS[4], KEYS[1])
else
  job['scheduled'] = due
  redis.call('ZADD', KEYS[3], due, KEYS[1])
end
redis.call('SET', KEYS[1], cjson.encode(job))
return 1
"""

_RELEASE = _OWNED + """
job['status'] = 'queued'
job['worker_id'] = nil
job['attempts'] = math.max(0, (tonumber(job['attempts']) or 1) - 1)
redis.call('LREM', KEYS[2], 0, KEYS[1])
redis.call('ZADD', KEYS[3], 0, KEYS[1])
redis.call('LPUSH', KEYS[4], KEYS[1])
redis.call('SET', KEYS[1], cjson.encode(job))
return 1
"""


class SaqJobQueue:
    """``JobQueue`` on saq's Redis queue ``name`` (one name per deployment)."""

    def __init__(self, redis: Redis, name: str = "openline") -> None:
        self.redis = redis
        self.saq = RedisQueue(redis, name=name)
        self._incomplete = self.saq.namespace("incomplete")
        self._queued = self.saq.namespace("queued")
        self._active = self.saq.namespace("active")
        self._wake = self.saq.namespace("wake")
        self._scripts = {name: redis.register_script(body) for name, body in (
            ("enqueue", _ENQUEUE), ("claim", _CLAIM), ("extend", _EXTEND),
            ("complete", _COMPLETE), ("fail", _FAIL), ("release", _RELEASE))}
        # One subscription per queue object, read by one task: several workers may share
        # this queue, and a Redis connection allows one reader at a time. Each wake-up
        # sets the current event (waking every waiter) and puts a fresh one in its place.
        self._woken = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._subscribing = asyncio.Lock()

    def _job_id(self, key: str) -> str:
        return self.saq.job_id(key)

    async def enqueue(self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None,
                      max_attempts: int = 5, delay_s: float = 0.0) -> str | None:
        key = dedupe_key or ids.new_id(JOB_ID_PREFIX)
        now = time.time()
        job = Job(function=kind, kwargs={"payload": json.dumps(payload)}, queue=self.saq,
                  key=key, timeout=0, heartbeat=0, retries=max(1, max_attempts),
                  # saq types ``scheduled`` as int seconds; a float keeps sub-second delays
                  ttl=KEEP_FINISHED_S, scheduled=now + delay_s if delay_s > 0 else 0,  # type: ignore[arg-type]
                  queued=int(now * 1000), status=Status.QUEUED)
        stored = await self._scripts["enqueue"](
            keys=[job.id, self._incomplete, self._queued, self._wake],
            args=[self.saq.serialize(job), job.scheduled])
        return key if stored else None

    async def claim(self, worker_id: str, lease_s: float, limit: int = 1) -> list[ClaimedJob]:
        now = time.time()
        raw = await self._scripts["claim"](
            keys=[self._incomplete, self._queued, self._active],
            args=[now, int(now * 1000), worker_id, lease_s, max(0, limit),
                  "lease expired on the last attempt (worker died?)",
                  KEEP_FINISHED_S * 1000])
        return [self._claimed(json.loads(item)) for item in raw]

    @staticmethod
    def _claimed(data: dict[str, Any]) -> ClaimedJob:
        kwargs = data.get("kwargs") or {}
        return ClaimedJob(str(data["key"]), str(data["function"]),
                          json.loads(kwargs.get("payload") or "{}"),
                          int(data.get("attempts") or 0), int(data.get("retries") or 1))

    async def _owned(self, script: str, job_id: str, keys: list[str], *args: Any) -> bool:
        result = await self._scripts[script](keys=[self._job_id(job_id), *keys],
                                             args=list(args))
        return bool(result)

    async def extend(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        return await self._owned("extend", job_id, [], worker_id, _now_ms(), lease_s)

    async def complete(self, job_id: str, worker_id: str) -> bool:
        return await self._owned("complete", job_id, [self._active, self._incomplete],
                                 worker_id, _now_ms(), KEEP_FINISHED_S * 1000)

    async def fail(self, job_id: str, worker_id: str, error: str,
                   retry_in_s: float | None) -> bool:
        return await self._owned(
            "fail", job_id, [self._active, self._incomplete, self._queued], worker_id,
            _now_ms(), KEEP_FINISHED_S * 1000, error[:2000],
            "" if retry_in_s is None else repr(float(retry_in_s)), time.time())

    async def release(self, job_id: str, worker_id: str) -> bool:
        return await self._owned("release", job_id,
                                 [self._active, self._incomplete, self._queued],
                                 worker_id, _now_ms())

    async def wait_for_work(self, timeout_s: float) -> None:
        """Until an enqueue anywhere publishes on the wake channel, or ``timeout_s``."""
        await self._listen()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), timeout_s)

    async def _listen(self) -> None:
        """Subscribe (before the caller waits, so no wake-up is missed) and relay wake-ups."""
        async with self._subscribing:
            if self._listener is not None and not self._listener.done():
                return
            pubsub = self.redis.pubsub()
            await pubsub.subscribe(self._wake)
            self._listener = asyncio.create_task(self._relay(pubsub),
                                                 name=f"wake-{self._wake}")

    async def _relay(self, pubsub: Any) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    woken, self._woken = self._woken, asyncio.Event()
                    woken.set()
        except Exception:  # Redis went away: waiters fall back to their timeout
            log.warning("job queue wake-up subscription lost; resubscribing on the next wait",
                        exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def unfinished(self) -> int:
        return int(await self.redis.zcard(self._incomplete))

    async def depth(self) -> tuple[int, float]:
        """Jobs waiting to run now, and how long the oldest of them has waited (s)."""
        waiting = int(await self.redis.llen(self._queued))
        first = await self.redis.lindex(self._queued, 0)
        if first is None:
            return waiting, 0.0
        job = self.saq.deserialize(await self.redis.get(first))
        since = (job.scheduled * 1000 if job and job.scheduled else job.queued if job else 0)
        return waiting, max(0.0, (_now_ms() - since) / 1000) if since else 0.0

    async def job(self, job_id: str) -> Job | None:
        """The stored saq job (tests, diagnostics)."""
        return await self.saq.job(job_id)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None


def _now_ms() -> int:
    return int(time.time() * 1000)
