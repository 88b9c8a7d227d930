"""Post-call use cases: the end-of-call job, extraction, evaluation, their listings.

When a conversation's end is stored, ``conversation_ended`` queues one
``postcall.conversation`` job (de-duplicated per conversation). Its handler, safe to run
again after a crash, does in order, skipping what an earlier try already stored:

1. ``post_call_transcript`` of every item and of the conversation (caller turns
   re-recognised from the recording);
2. ``task_results`` (the agent's tasks judged by the LLM) and an optional ``summary``;
3. the ``conversation.ended`` and ``conversation.analysis`` webhooks.

A failing step raises so the job is retried with backoff; on the job's last attempt the
failing step is skipped instead, so the webhooks still go out.
Extraction and evaluation run synchronously in the request (the API returns the result).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from openline.domain import ids
from openline.domain.conversation import Evaluation, Extraction
from openline.domain.errors import NotFound, ValidationFailed
from openline.domain.events import ConversationAnalyzed, ConversationEnded, ConversationTransferred
from openline.domain.extraction import ExtractionSchemaSpec
from openline.domain.limits import MAX_PROJECT_EVALS_LISTED, MAX_RESULTS_PER_CONVERSATION
from openline.postcall import analysis, transcripts
from openline.postcall.prompts import FieldPrompt
from openline.postcall.queue import ClaimedJob, JobQueue
from openline.providers.llm.base import LLM
from openline.providers.stt.base import STT
from openline.services import lookup, mapping
from openline.services.commands import RunEvaluation, RunExtraction
from openline.services.conversations import ConversationService
from openline.services.principal import Principal
from openline.services.recordings import RecordingStore
from openline.services.redaction import Protection
from openline.services.webhooks import WebhookService
from openline.store import tables as t
from openline.store.blobs import DirectoryBlobs
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.store.tables_postcall import ConversationEval, ConversationExtraction, Job

log = logging.getLogger(__name__)

CONVERSATION_JOB = "postcall.conversation"


@dataclass(frozen=True)
class PostCallOptions:
    summary: bool = True
    max_attempts: int = 4
    #: conversations ended this long before start-up without a post-call job get one
    recover_window: timedelta = timedelta(days=1)


class PostCallService:
    """Post-call processing over the configured LLM and recogniser."""

    def __init__(self, db: Database, queue: JobQueue, llm: LLM, stt: STT,
                 webhooks: WebhookService, conversations: ConversationService,
                 options: PostCallOptions | None = None,
                 recordings: RecordingStore | None = None) -> None:
        self.db, self.queue, self.llm, self.stt = db, queue, llm, stt
        #: where recordings are read from (S3: downloaded for the job)
        self.recordings = recordings or RecordingStore(DirectoryBlobs(Path(".")), Path("."))
        self.webhooks, self.conversations = webhooks, conversations
        self.options = options or PostCallOptions()
        #: a dialect's own post-call analyses (the Vapi ``analysisPlan``): each gets the
        #: conversation's id and transcript after the summary, before the events go out,
        #: and skips what an earlier try stored
        self.steps: list[Callable[[str, str], Awaitable[None]]] = []

    # --- the end-of-call job --------------------------------------------------------------

    async def conversation_ended(self, conversation_id: str) -> None:
        """Queue the post-call job of a conversation whose end is stored (idempotent)."""
        await self.queue.enqueue(CONVERSATION_JOB, {"conversation_id": conversation_id},
                                 dedupe_key=f"postcall:{conversation_id}",
                                 max_attempts=self.options.max_attempts)

    async def recover(self) -> int:
        """Queue the job for recently ended conversations that never got one (a crash
        between storing the end and queueing, or conversations closed as orphans)."""
        since = utcnow() - self.options.recover_window
        async with self.db.session() as s:
            ended = list(await s.scalars(select(t.Conversation.id).where(
                t.Conversation.ended_at.is_not(None), t.Conversation.ended_at >= since)))
            keys = [f"postcall:{c}" for c in ended]
            have = set(await s.scalars(select(Job.dedupe_key).where(Job.dedupe_key.in_(keys)))) \
                if keys else set()
        missing = [c for c in ended if f"postcall:{c}" not in have]
        for conversation_id in missing:
            await self.conversation_ended(conversation_id)
        return len(missing)

    async def conversation_transferred(self, conversation_id: str, transferred_to: str) -> int:
        """Publish ``ConversationTransferred`` (for the engine's phone transfers)."""
        conversation = await self.conversations.load(conversation_id)
        if conversation is None:
            return 0
        return await self.webhooks.publish(ConversationTransferred(conversation, transferred_to))

    async def run_job(self, job: ClaimedJob) -> None:
        """Handler of ``postcall.conversation`` jobs."""
        conversation_id = str(job.payload["conversation_id"])
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
        if row is None or row.ended_at is None:
            return  # deleted meanwhile, or (impossible) still live: nothing to do
        if Protection.of(row.config).zero_retention:  # nothing but metadata is kept
            await self._send_events(conversation_id)
            return
        if row.post_call_transcript is None:
            await self._step("transcripts", job, self._refine_transcripts(conversation_id))
        if row.config.get("tasks") and not row.task_results:
            await self._step("task results", job, self._judge_tasks(conversation_id))
        if self.options.summary and row.summary is None:
            await self._step("summary", job, self._summarize(conversation_id))
        for step in self.steps:
            await self._step("dialect analysis", job, self._dialect_step(step, conversation_id))
        await self._send_events(conversation_id)

    async def _dialect_step(self, step: Callable[[str, str], Awaitable[None]],
                            conversation_id: str) -> None:
        _, transcript = await self._transcript(conversation_id)
        await step(conversation_id, transcript)

    async def _step(self, name: str, job: ClaimedJob, work: Any) -> None:
        try:
            await work
        except Exception:
            if not job.last_attempt:
                raise
            log.exception("post-call %s failed on the last attempt; skipped", name)

    async def _refine_transcripts(self, conversation_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            assert row is not None
            items = await _items(s, conversation_id)
        turns = [transcripts.TurnAudio(i.role, i.live_transcript or "", i.started_at,
                                       i.duration_ms) for i in items]
        config = row.config or {}
        async with self.recordings.local_file(row.recording_path) as recording:
            texts = await transcripts.refine(
                self.stt, recording, row.started_at, turns,
                # A multilingual conversation's turns are detected one by one.
                language=None if config.get("additional_languages") else config.get(
                    "default_language"),
                hotwords=config.get("boosted_keywords") or ())
        keep = Protection.of(config)
        texts = [keep.text(text) or "" for text in texts]  # redacted when asked
        async with self.db.session() as s:
            for item, text in zip(items, texts, strict=True):
                stored = await s.get(t.ConversationItem, item.id)
                if stored is not None:
                    stored.post_call_transcript = text
            conv = await s.get(t.Conversation, conversation_id)
            if conv is not None:
                conv.post_call_transcript = analysis.render_transcript(
                    [(i.role, text) for i, text in zip(items, texts, strict=True)])

    async def _judge_tasks(self, conversation_id: str) -> None:
        row, transcript = await self._transcript(conversation_id)
        tasks = [(str(task.get("name")), str(task.get("description") or ""))
                 for task in row.config.get("tasks") or [] if task.get("name")]
        results = await analysis.task_results(self.llm, tasks, transcript) if transcript else {
            name: analysis.TaskResult(False, "nothing was said") for name, _ in tasks}
        keep = Protection.of(row.config)
        async with self.db.session() as s:
            conv = await s.get(t.Conversation, conversation_id)
            if conv is not None:
                conv.task_results = {name: {"completed": r.completed,
                                            "reasoning": keep.text(r.reasoning) or ""}
                                     for name, r in results.items()}

    async def _summarize(self, conversation_id: str) -> None:
        row, transcript = await self._transcript(conversation_id)
        if not transcript:
            return  # nothing to summarise; leave summary null
        summary = Protection.of(row.config).text(
            await analysis.summarize(self.llm, transcript))
        async with self.db.session() as s:
            conv = await s.get(t.Conversation, conversation_id)
            if conv is not None:
                conv.summary = summary

    async def _send_events(self, conversation_id: str) -> None:
        conversation = await self.conversations.load(conversation_id)
        if conversation is None:
            return
        await self.webhooks.publish(ConversationEnded(conversation))
        await self.webhooks.publish(ConversationAnalyzed(conversation))

    async def _transcript(self, conversation_id: str) -> tuple[t.Conversation, str]:
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            if row is None:
                raise NotFound("Conversation not found")
            items = await _items(s, conversation_id)
        text = analysis.render_transcript(
            [(i.role, i.post_call_transcript or i.live_transcript or "") for i in items])
        return row, text or row.post_call_transcript or row.live_transcript or ""

    # --- extraction and evaluation (API) ---------------------------------------------------

    async def extract(self, who: Principal, cmd: RunExtraction) -> Extraction:
        """Run an extraction schema now; 404 unknown, 409 live, 400 without ``schema_id``."""
        conv = await self.conversations.require_ended(who, cmd.conversation_id)
        if not cmd.schema_id:
            raise ValidationFailed("Invalid parameters: schema_id", {"schema_id": "is required"})
        async with self.db.session() as s:
            schema, _ = await lookup.extraction_schema(s, who.workspace_id, None, cmd.schema_id)
        spec = mapping.load_spec(ExtractionSchemaSpec, schema.spec)
        fields = [FieldPrompt(f.name, f.type, f.description) for f in spec.fields]
        _, transcript = await self._transcript(cmd.conversation_id)
        result = await analysis.extract(self.llm, spec.prompt, fields, transcript)
        row = ConversationExtraction(
            id=ids.new_id(ids.EXTRACTION), conversation_id=cmd.conversation_id,
            schema_id=schema.id, schema_name=schema.name,
            result=Protection.of(conv.settings).document(result.result),
            notes=result.notes)
        async with self.db.session() as s:
            await _ensure_results_room(s, ConversationExtraction.conversation_id,
                                       cmd.conversation_id, "extractions")
            s.add(row)
        return mapping.extraction(row, False)

    async def list_extractions(self, who: Principal, conversation_id: str) -> list[Extraction]:
        await self.conversations.get(who, conversation_id)
        async with self.db.session() as s:
            rows = list(await s.scalars(select(ConversationExtraction).where(
                ConversationExtraction.conversation_id == conversation_id)
                .order_by(ConversationExtraction.created_at, ConversationExtraction.id)))
            schema_ids = {r.schema_id for r in rows}
            alive = set(await s.scalars(select(t.ExtractionSchema.id).where(
                t.ExtractionSchema.id.in_(schema_ids)))) if schema_ids else set()
        return [mapping.extraction(r, r.schema_id not in alive) for r in rows]

    async def evaluate(self, who: Principal, cmd: RunEvaluation) -> Evaluation:
        """Ask an eval prompt about the conversation now; the reasoning is stored."""
        conv = await self.conversations.require_ended(who, cmd.conversation_id)
        if not cmd.prompt_id:
            raise ValidationFailed("Invalid parameters: prompt_id", {"prompt_id": "is required"})
        async with self.db.session() as s:
            prompt = (await s.execute(
                select(t.EvalPrompt).join(t.Project, t.Project.id == t.EvalPrompt.project_id)
                .where(t.EvalPrompt.id == cmd.prompt_id,
                       t.Project.workspace_id == who.workspace_id))).scalar_one_or_none()
        if prompt is None:
            raise NotFound("Conversation eval prompt not found")
        _, transcript = await self._transcript(cmd.conversation_id)
        verdict = await analysis.evaluate(self.llm, prompt.prompt, transcript)
        row = ConversationEval(
            id=ids.new_id(ids.EVAL), conversation_id=cmd.conversation_id,
            project_id=conv.project.id, prompt_id=prompt.id, prompt_name=prompt.name,
            result=verdict.result,
            reasoning=Protection.of(conv.settings).text(verdict.reasoning))
        async with self.db.session() as s:
            await _ensure_results_room(s, ConversationEval.conversation_id,
                                       cmd.conversation_id, "evaluations")
            s.add(row)
        return mapping.evaluation(row)

    async def list_evals(self, who: Principal, conversation_id: str) -> list[Evaluation]:
        await self.conversations.get(who, conversation_id)
        async with self.db.session() as s:
            rows = await s.scalars(select(ConversationEval).where(
                ConversationEval.conversation_id == conversation_id)
                .order_by(ConversationEval.created_at, ConversationEval.id))
            return [mapping.evaluation(r) for r in rows]

    async def list_project_evals(self, who: Principal, project: str) -> list[Evaluation]:
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            # No pagination in this dialect's API: the newest ones, oldest first.
            newest = list(await s.scalars(select(ConversationEval).where(
                ConversationEval.project_id == proj.id)
                .order_by(ConversationEval.created_at.desc(), ConversationEval.id.desc())
                .limit(MAX_PROJECT_EVALS_LISTED)))
            return [mapping.evaluation(r) for r in reversed(newest)]


async def _ensure_results_room(s: AsyncSession, column: InstrumentedAttribute[str],
                               conversation_id: str,
                               what: str) -> None:
    await lookup.ensure_room(
        s, column, conversation_id, MAX_RESULTS_PER_CONVERSATION,
        f"A conversation has at most {MAX_RESULTS_PER_CONVERSATION} {what}", "conversation_id")


async def _items(s: AsyncSession, conversation_id: str) -> list[t.ConversationItem]:
    return list(await s.scalars(select(t.ConversationItem).where(
        t.ConversationItem.conversation_id == conversation_id)
        .order_by(t.ConversationItem.item_idx)))
