"""Operations: readiness checks and Prometheus metrics of one node.

Each node exposes its own registry (``prometheus_client.CollectorRegistry``, not the
process-global one, so several apps in one test process do not collide):

* ``openline_live_calls`` - conversations running on this node;
* ``openline_turn_stage_seconds{stage}`` - per-stage latency of each answered turn
  (``stt``, ``endpointing``, ``llm_first_token``, ``tts_first_audio``, ... as the engine
  reports them, and ``voice_to_voice`` for the whole turn);
* ``openline_job_queue_depth`` / ``openline_job_queue_oldest_age_seconds`` - post-call jobs
  due now and how long the oldest has waited (the whole deployment's queue);
* ``openline_webhook_delivery_failures_total`` - failed webhook attempts (the whole
  deployment's, from the database);
* ``openline_draining`` - 1 once SIGTERM started the drain.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from openline.store.db import Database
from openline.store.tables import utcnow
from openline.store.tables_postcall import QUEUED, Job, WebhookDelivery
from openline.voice.events import AudioOut

log = logging.getLogger(__name__)

#: turn stages take tens of milliseconds to a few seconds
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

#: (jobs due now, age in seconds of the oldest of them)
QueueDepth = Callable[[], Awaitable[tuple[int, float]]]
Check = Callable[[], Awaitable[bool]]


async def db_queue_depth(db: Database) -> tuple[int, float]:
    """``QueueDepth`` of the database queue (embedded mode)."""
    now = utcnow()
    async with db.session() as s:
        count, oldest = (await s.execute(select(func.count(), func.min(Job.run_at)).where(
            Job.status == QUEUED, Job.run_at <= now))).one()
    if not count or oldest is None:
        return 0, 0.0
    return int(count), max(0.0, (now - oldest).total_seconds())


class _WebhookFailures(Collector):
    """The failed-delivery count, read at scrape time (set by ``Operations.refresh``)."""

    def __init__(self) -> None:
        self.value = 0.0

    def collect(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily("openline_webhook_delivery_failures",
                                  "Failed webhook delivery attempts (whole deployment)",
                                  value=self.value)


@dataclass
class Operations:
    """What ``/ready`` and ``/metrics`` report for one node."""

    db: Database
    live_calls: Callable[[], int]
    providers_loaded: Callable[[], bool]
    queue_depth: QueueDepth
    #: extra readiness checks by name (``redis``)
    checks: dict[str, Check] = field(default_factory=dict)
    draining: Callable[[], bool] = lambda: False
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        Gauge("openline_live_calls", "Conversations running on this node",
              registry=r).set_function(lambda: float(self.live_calls()))
        Gauge("openline_draining", "1 while this node drains (SIGTERM)",
              registry=r).set_function(lambda: float(self.draining()))
        self.turn_stage = Histogram("openline_turn_stage_seconds",
                                    "Latency of each stage of an answered turn", ["stage"],
                                    buckets=STAGE_BUCKETS, registry=r)
        self.queue_waiting = Gauge("openline_job_queue_depth",
                                   "Post-call jobs due now (whole deployment)", registry=r)
        self.queue_age = Gauge("openline_job_queue_oldest_age_seconds",
                               "How long the oldest due post-call job has waited",
                               registry=r)
        self._failures = _WebhookFailures()
        r.register(self._failures)

    # ----- hooks the live service calls ---------------------------------------------------
    def engine_event(self, event: Any) -> None:
        """Per-stage timings arrive on the first audio frame of a reply (durations end in
        ``_ms``; the rest, such as the end-of-turn model's probability, are no stage)."""
        if isinstance(event, AudioOut) and event.timings:
            for name, ms in event.timings.items():
                if name.endswith("_ms") and isinstance(ms, int | float) and ms >= 0:
                    stage = name.removesuffix("_ms")
                    self.turn_stage.labels(stage).observe(ms / 1000)

    def call_finished(self, latencies_ms: Sequence[float]) -> None:
        for ms in latencies_ms:
            self.turn_stage.labels("voice_to_voice").observe(ms / 1000)

    # ----- the routes -----------------------------------------------------------------
    async def ready(self) -> dict[str, bool]:
        """Each check by name; the node is ready when all are true."""
        results = {"database": await self._database(), "models": self.providers_loaded(),
                   "accepting_calls": not self.draining()}
        for name, check in self.checks.items():
            try:
                results[name] = bool(await check())
            except Exception:
                log.warning("readiness check %s failed", name, exc_info=True)
                results[name] = False
        return results

    async def _database(self) -> bool:
        try:
            async with self.db.session() as s:
                await s.execute(text("SELECT 1"))
        except Exception:
            log.warning("readiness: database unreachable", exc_info=True)
            return False
        return True

    async def refresh(self) -> None:
        """Read the deployment-wide values (queue, webhook failures) before a scrape."""
        try:
            waiting, age = await self.queue_depth()
            self.queue_waiting.set(waiting)
            self.queue_age.set(age)
            async with self.db.session() as s:
                failed = await s.scalar(select(func.count()).select_from(WebhookDelivery)
                                        .where(WebhookDelivery.success.is_(False)))
            self._failures.value = float(failed or 0)
        except Exception:  # a scrape must still answer with what this node knows
            log.warning("metrics refresh failed", exc_info=True)

    async def render(self) -> bytes:
        await self.refresh()
        return bytes(generate_latest(self.registry))
