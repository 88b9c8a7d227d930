"""Builds the post-call side of a process from its settings: queue, services, worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from openline.api.phonic.views import PhonicEvents
from openline.domain.conversation import Conversation
from openline.postcall.queue import ClaimedJob, DbJobQueue
from openline.postcall.retention import RetentionSweeper
from openline.postcall.worker import Handler, Worker, WorkerOptions
from openline.providers.stt.base import STT
from openline.providers.stt.faster_whisper import FasterWhisperOptions, FasterWhisperSTT
from openline.services.conversations import ConversationService
from openline.services.postcall import CONVERSATION_JOB, PostCallOptions, PostCallService
from openline.services.recordings import RecordingLinks
from openline.services.webhooks import DELIVER_JOB, WebhookOptions, WebhookService
from openline.settings import Settings
from openline.store.db import Database
from openline.voice.session import Providers


@dataclass
class PostCallRuntime:
    queue: DbJobQueue
    webhooks: WebhookService
    postcall: PostCallService
    worker: Worker
    #: deletes transcripts and recordings past the agents' retention windows
    retention: RetentionSweeper | None = None

    async def start(self) -> None:
        """Queue work a crash left unqueued, then start the worker (inside the loop)."""
        await self.postcall.recover()
        self.worker.start()
        if self.retention is not None:
            self.retention.start()

    async def stop(self) -> None:
        if self.retention is not None:
            await self.retention.stop()
        await self.worker.stop()
        await self.webhooks.close()


def postcall_stt(settings: Settings, providers: Providers) -> STT:
    """The post-call recogniser: beam search (the live one decodes greedily for latency),
    on a larger configured model when there is one. Test fakes are reused as they are."""
    if settings.postcall_stt_model_dir is None and not isinstance(providers.stt,
                                                                  FasterWhisperSTT):
        return providers.stt
    return FasterWhisperSTT(FasterWhisperOptions(
        model_dir=settings.postcall_stt_model_dir or settings.stt_model_dir,
        beam_size=5, cpu_threads=2, short_window=False))


MAX_DEFER_S = 120.0


def when_calls_are_idle(run: Handler, wait_idle: Callable[[float], Awaitable[None]]
                        ) -> Handler:
    """Hold heavy post-call work while live calls run (up to ``MAX_DEFER_S``): its models
    share the CPU with live turns. The job's lease keeps being renewed meanwhile."""

    async def deferred(job: ClaimedJob) -> None:
        await wait_idle(MAX_DEFER_S)
        await run(job)

    return deferred


async def _never_busy(_: float) -> None:
    return None


def build_postcall(settings: Settings, db: Database, providers: Providers,
                   links: RecordingLinks,
                   wait_idle: Callable[[float], Awaitable[None]] = _never_busy
                   ) -> PostCallRuntime:
    """Queue, webhook and post-call services, and the in-process worker running them."""
    queue = DbJobQueue(db)

    def audio_url(conversation: Conversation) -> str | None:
        return links.url(conversation.id, "wav.gz") if conversation.has_recording else None

    webhooks = WebhookService(db, queue, WebhookOptions(
        allow_private_urls=settings.allow_private_urls, timeout_s=settings.webhook_timeout_s,
        max_attempts=settings.webhook_max_attempts), renderers={"phonic": PhonicEvents(audio_url)})
    postcall = PostCallService(
        db, queue, providers.llm, postcall_stt(settings, providers), webhooks,
        ConversationService(db),
        PostCallOptions(summary=settings.postcall_summary,
                        max_attempts=settings.job_max_attempts))
    heavy = when_calls_are_idle(postcall.run_job, wait_idle)
    worker = Worker(queue, {CONVERSATION_JOB: heavy, DELIVER_JOB: webhooks.deliver},
                    WorkerOptions(concurrency=settings.job_concurrency,
                                  lease_s=settings.job_lease_s, poll_s=settings.job_poll_s,
                                  retry_base_s=settings.job_retry_base_s,
                                  retry_max_s=settings.job_retry_max_s))
    return PostCallRuntime(queue, webhooks, postcall, worker,
                           RetentionSweeper(db, every_s=settings.retention_sweep_s))
