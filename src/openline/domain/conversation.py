"""Stored conversations: the conversation, its items, and what post-call work found."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from openline.domain.errors import ValidationFailed
from openline.domain.project import Ref

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: A tool-call record as the engine stores it on an assistant item.
#: (``domain.tool_call`` types these; until every producer uses it they stay documents.)
ToolCallRecord = Mapping[str, Any]


@dataclass(frozen=True)
class ConversationItem:
    """One turn: who spoke, what was heard live and after the call, and the tool calls."""

    id: str
    item_idx: int
    role: str
    live_transcript: str | None
    post_call_transcript: str | None = None
    duration_ms: float | None = None
    started_at: datetime | None = None
    voice_id: str | None = None
    audio_speed: float | None = None
    system_prompt: str | None = None
    tool_calls: tuple[ToolCallRecord, ...] = ()

    @property
    def text(self) -> str:
        """The best transcript there is (post-call when refined, else live)."""
        return self.post_call_transcript or self.live_transcript or ""


@dataclass(frozen=True)
class ConversationAgent:
    """The agent a conversation ran with (it may have been deleted since)."""

    id: str
    name: str | None
    is_deleted: bool


@dataclass(frozen=True)
class TaskResult:
    """Whether the agent completed one of its tasks, and why the judge thinks so."""

    completed: bool
    reasoning: str


@dataclass(frozen=True)
class ConversationAnalysis:
    """Latency and interruption metrics of a finished conversation."""

    conversation_id: str
    latencies_ms: tuple[float, ...]
    interruptions_count: int


@dataclass(frozen=True)
class Conversation:
    """A conversation, live or finished, with its items in order.

    ``settings`` is the snapshot of the configuration the call ran with, keyed by agent
    field names plus the session keys (``input_format``, ``output_format``,
    ``template_variables``, ``listen_only``); it is stored as written when the call started.
    """

    id: str
    workspace: Ref
    project: Ref
    agent: ConversationAgent | None
    external_id: str | None
    origin: str
    settings: Mapping[str, Any]
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = None
    ended_by: str | None = None
    live_transcript: str | None = None
    post_call_transcript: str | None = None
    summary: str | None = None
    latencies_ms: tuple[float, ...] = ()
    interruptions_count: int = 0
    task_results: Mapping[str, TaskResult] = field(default_factory=dict)
    metadata: Mapping[str, Any] | None = None
    call_info: Mapping[str, Any] | None = None
    has_recording: bool = False
    items: tuple[ConversationItem, ...] = ()
    #: when the retention policy deleted the transcripts and the recording
    transcripts_deleted_at: datetime | None = None
    audio_recordings_deleted_at: datetime | None = None

    @property
    def is_redacted(self) -> bool:
        """Transcripts were stored with PII redacted (the agent's ``enable_redaction``)."""
        return bool(self.settings.get("enable_redaction"))

    @property
    def is_live(self) -> bool:
        return self.ended_at is None

    @property
    def analysis(self) -> ConversationAnalysis:
        return ConversationAnalysis(self.id, self.latencies_ms, self.interruptions_count)


@dataclass(frozen=True)
class Extraction:
    """The result of running an extraction schema over a conversation."""

    id: str
    conversation_id: str
    schema: Ref
    schema_deleted: bool
    result: Mapping[str, Any]
    #: field -> why its value is null or was changed (coercion)
    notes: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Evaluation:
    """The verdict of an eval prompt on a conversation."""

    id: str
    conversation_id: str
    project_id: str
    prompt: Ref
    result: str
    reasoning: str | None
    created_at: datetime


def parse_started_at(value: str, field_name: str, *, end_of_day: bool) -> datetime:
    """``2025-04-17`` (a whole day: its start, or its end) or a full ISO timestamp, in UTC."""
    try:
        if _DATE_ONLY.match(value):
            day = datetime.combine(datetime.fromisoformat(value).date(), time.min, UTC)
            return day + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else day
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(
            f"Invalid {field_name}",
            {field_name: "use a date (2025-04-17) or an ISO 8601 timestamp"},
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
