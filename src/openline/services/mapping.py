"""Store rows <-> domain objects. The stored JSON shapes stay exactly as they were written.

Configuration documents (agent, tool and schema specs) are stored as the domain model's
JSON dump; loading validates them again, and a document an older release wrote that no
longer validates is loaded as it is rather than making the resource unreadable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from openline.domain.agent import Agent, AgentSpec, ConfigurationEndpoint
from openline.domain.conversation import (
    Conversation,
    ConversationAgent,
    ConversationItem,
    Evaluation,
    Extraction,
    TaskResult,
)
from openline.domain.events import WebhookDelivery, WebhookEndpoint
from openline.domain.extraction import EvalPrompt, ExtractionSchema, ExtractionSchemaSpec
from openline.domain.phone_number import NumberSource, PhoneNumber, SipSettings
from openline.domain.project import Project, Ref
from openline.domain.tool import Tool, ToolSpec
from openline.store import tables as t
from openline.store import tables_phonic as tph
from openline.store import tables_postcall as tp

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def load_spec(model: type[M], document: Mapping[str, Any]) -> M:
    """A stored configuration document as its domain model (see the module docstring)."""
    try:
        return model.model_validate(dict(document))
    except ValidationError:
        log.warning("stored %s no longer validates; loaded as stored", model.__name__)
        return model.model_construct(**dict(document))


def dump_spec(spec: BaseModel) -> dict[str, Any]:
    """The stored JSON form of a configuration document."""
    return spec.model_dump(mode="json")


def ref(row: t.Project | t.Agent | t.Workspace) -> Ref:
    return Ref(row.id, row.name)


# --- projects, agents, phone numbers ---------------------------------------------------------

def project(row: t.Project, default_agent: t.Agent | None, active: int) -> Project:
    return Project(row.id, row.name, ref(default_agent) if default_agent else None, active,
                   row.max_active_conversations)


def sip_from_row(data: Mapping[str, Any] | None) -> SipSettings | None:
    if not data:
        return None
    return SipSettings(data.get("transport"), data.get("media_encryption"), data.get("address"),
                       data.get("username"), data.get("password"))


def sip_to_row(sip: SipSettings | None) -> dict[str, Any] | None:
    """The stored SIP document: media settings and credentials, each only when given."""
    if sip is None:
        return None
    out: dict[str, Any] = {}
    if sip.transport is not None or sip.media_encryption is not None:
        out.update(transport=sip.transport, media_encryption=sip.media_encryption)
    if sip.address:
        out.update(address=sip.address, username=sip.username, password=sip.password)
    return out or None


def endpoint_to_row(endpoint: ConfigurationEndpoint | None) -> dict[str, Any] | None:
    return None if endpoint is None else dump_spec(endpoint)


def phone_number(row: t.PhoneNumber) -> PhoneNumber:
    endpoint = load_spec(ConfigurationEndpoint, row.configuration_endpoint) \
        if row.configuration_endpoint else None
    source: NumberSource = "custom" if row.source == "custom" else "pool"
    return PhoneNumber(row.number, source, sip_from_row(row.sip), endpoint)


def agent(row: t.Agent, project_row: t.Project, numbers: Sequence[t.PhoneNumber]) -> Agent:
    return Agent(row.id, ref(project_row), load_spec(AgentSpec, row.spec), row.version_number,
                 row.is_disabled, tuple(phone_number(n) for n in numbers))


# --- tools, schemas, eval prompts ------------------------------------------------------------

def tool(row: t.Tool, project_row: t.Project) -> Tool:
    return Tool(row.id, ref(project_row), load_spec(ToolSpec, row.spec))


def extraction_schema(row: t.ExtractionSchema, project_row: t.Project) -> ExtractionSchema:
    return ExtractionSchema(row.id, ref(project_row), load_spec(ExtractionSchemaSpec, row.spec))


def eval_prompt(row: t.EvalPrompt) -> EvalPrompt:
    return EvalPrompt(row.id, row.name, row.prompt)


# --- conversations ---------------------------------------------------------------------------

def item(row: t.ConversationItem) -> ConversationItem:
    return ConversationItem(
        id=row.id, item_idx=row.item_idx, role=row.role, live_transcript=row.live_transcript,
        post_call_transcript=row.post_call_transcript, duration_ms=row.duration_ms,
        started_at=row.started_at, voice_id=row.voice_id, audio_speed=row.audio_speed,
        system_prompt=row.system_prompt, tool_calls=tuple(row.tool_calls or ()))


def _task_results(data: Mapping[str, Any] | None) -> dict[str, TaskResult]:
    return {name: TaskResult(bool(value.get("completed")), str(value.get("reasoning") or ""))
            for name, value in (data or {}).items() if isinstance(value, Mapping)}


def conversation(row: t.Conversation, workspace: Ref, project_row: t.Project,
                 items: Sequence[t.ConversationItem], agent_deleted: bool,
                 retention: tph.ConversationRetention | None = None) -> Conversation:
    agent_ref = ConversationAgent(row.agent_id, row.agent_name, agent_deleted) \
        if row.agent_id else None
    return Conversation(
        id=row.id, workspace=workspace, project=ref(project_row), agent=agent_ref,
        external_id=row.external_id, origin=row.origin, settings=dict(row.config or {}),
        started_at=row.started_at, ended_at=row.ended_at, duration_ms=row.duration_ms,
        ended_by=row.ended_by, live_transcript=row.live_transcript,
        post_call_transcript=row.post_call_transcript, summary=row.summary,
        latencies_ms=tuple(row.latencies_ms or ()),
        interruptions_count=row.interruptions_count,
        task_results=_task_results(row.task_results), metadata=row.meta,
        call_info=row.call_info, has_recording=row.recording_path is not None,
        items=tuple(item(i) for i in items),
        transcripts_deleted_at=retention.transcripts_deleted_at if retention else None,
        audio_recordings_deleted_at=retention.audio_recordings_deleted_at
        if retention else None)


def extraction(row: tp.ConversationExtraction, schema_deleted: bool) -> Extraction:
    return Extraction(row.id, row.conversation_id, Ref(row.schema_id, row.schema_name),
                      schema_deleted, dict(row.result or {}), dict(row.notes or {}),
                      row.created_at)


def evaluation(row: tp.ConversationEval) -> Evaluation:
    return Evaluation(row.id, row.conversation_id, row.project_id,
                      Ref(row.prompt_id, row.prompt_name), row.result, row.reasoning,
                      row.created_at)


# --- webhooks --------------------------------------------------------------------------------

def webhook_endpoint(row: tp.WebhookEndpoint, all_kinds: Sequence[str]) -> WebhookEndpoint:
    """An endpoint row; the dialect has no column yet, so every endpoint is Phonic's."""
    return WebhookEndpoint(row.id, row.workspace_id, row.url, row.description,
                           tuple(row.events or all_kinds), row.created_at)


def webhook_delivery(row: tp.WebhookDelivery) -> WebhookDelivery:
    return WebhookDelivery(row.id, row.message_id, row.event_type, row.attempt,
                           row.status_code, row.success, row.error, row.duration_ms,
                           row.created_at)
