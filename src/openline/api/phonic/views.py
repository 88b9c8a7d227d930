"""Pure functions from service results to Phonic wire shapes (every documented key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openline.services.agents import AgentView
from openline.services.conversations import ConversationView, analysis_of
from openline.services.projects import ProjectView
from openline.services.tools import ToolView
from openline.services.voices import VoiceInfo
from openline.store import tables as t

#: Conversation configuration keys copied from the stored snapshot (``null`` when absent).
CONVERSATION_CONFIG_KEYS = (
    "generate_welcome_message", "is_welcome_message_interruptible", "listen_only",
    "welcome_message", "template_variables", "system_prompt", "input_format", "output_format",
    "background_noise_level", "background_noise", "boosted_keywords", "pronunciation_dictionary",
    "min_words_to_interrupt", "default_language", "additional_languages", "multilingual_mode",
    "push_to_talk", "intelligence_level", "phonic_model", "languages", "heard_languages",
    "generate_no_input_poke_text", "no_input_poke_sec", "no_input_poke_text",
    "no_input_end_conversation_sec", "websocket_timeout_sec", "vad_prebuffer_duration_ms",
    "vad_min_speech_duration_ms", "vad_min_silence_duration_ms", "vad_threshold",
    "enable_watermarking", "data_retention_policy", "enable_assistant_backchannel",
    "assistant_backchannel_aggressiveness",
)


def iso(value: datetime | None) -> str | None:
    """``2025-07-30T23:50:00.000Z`` style timestamps."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def ref(row: Any) -> dict[str, str]:
    return {"id": row.id, "name": row.name}


def agent_json(view: AgentView) -> dict[str, Any]:
    numbers = [n.number for n in view.numbers]
    out: dict[str, Any] = {
        "id": view.agent.id,
        "name": view.agent.name,
        "project": ref(view.project),
        "phone_number": numbers[0] if numbers else None,
        "phone_numbers": numbers,
        "is_disabled": view.agent.is_disabled,
        "version_number": view.agent.version_number,
    }
    spec = dict(view.spec)
    spec.pop("name", None)
    out.update(spec)
    out["custom_phone_numbers"] = [n.number for n in view.numbers if n.source == "custom"]
    return out


def project_json(view: ProjectView) -> dict[str, Any]:
    p = view.project
    return {
        "id": p.id,
        "name": p.name,
        "default_agent": ref(view.default_agent) if view.default_agent else None,
        "active_conversations": view.active_conversations,
        "max_active_conversations": p.max_active_conversations,
    }


def tool_json(view: ToolView) -> dict[str, Any]:
    out: dict[str, Any] = {"id": view.tool.id, "name": view.tool.name,
                           "project": ref(view.project)}
    spec = dict(view.tool.spec)
    spec.pop("name", None)
    out.update(spec)
    if spec.get("type") != "custom_context":
        out.pop("context", None)
    return out


def schema_json(row: t.ExtractionSchema) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "prompt": row.spec.get("prompt", ""),
            "fields": row.spec.get("fields", [])}


def eval_prompt_json(row: t.EvalPrompt) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "prompt": row.prompt}


def voice_json(voice: VoiceInfo, audio_url: str | None) -> dict[str, Any]:
    return {"id": voice.id, "name": voice.name, "description": voice.description,
            "audio_url": audio_url}


def item_json(item: t.ConversationItem) -> dict[str, Any]:
    return {
        "id": item.id, "item_idx": item.item_idx, "role": item.role,
        "live_transcript": item.live_transcript, "post_call_transcript": item.post_call_transcript,
        "redacted_transcript": None, "duration_ms": item.duration_ms,
        "started_at": iso(item.started_at), "voice_id": item.voice_id,
        "audio_speed": item.audio_speed, "system_prompt": item.system_prompt,
        "tool_calls": list(item.tool_calls or []),
    }


def conversation_json(
    view: ConversationView, workspace: str, audio_url: str | None
) -> dict[str, Any]:
    c = view.conversation
    config = c.config or {}
    out: dict[str, Any] = {
        "id": c.id,
        "agent": ({"id": c.agent_id, "name": c.agent_name, "is_deleted": view.agent_deleted}
                  if c.agent_id else None),
        "workspace": workspace,
        "project": ref(view.project),
        "external_id": c.external_id,
        "origin": c.origin,
        "model": "merritt",
        "is_live": c.ended_at is None,
    }
    out.update({key: config.get(key) for key in CONVERSATION_CONFIG_KEYS})
    out["template_variables"] = config.get("template_variables") or {}
    out["pronunciation_dictionary"] = config.get("pronunciation_dictionary") or []
    out.update({
        "live_transcript": c.live_transcript,
        "post_call_transcript": c.post_call_transcript,
        "summary": c.summary,
        "duration_ms": c.duration_ms,
        "audio_url": audio_url,
        "started_at": iso(c.started_at),
        "ended_at": iso(c.ended_at),
        "ended_by": c.ended_by,
        "task_results": c.task_results or {},
        "items": [item_json(i) for i in view.items],
        "analysis": analysis_of(c),
        "is_redacted": False,
        "redacted_transcript": None,
        "metadata": c.meta,
        "deletion_info": {"transcripts_deleted_at": None, "audio_recordings_deleted_at": None},
        "call_info": c.call_info,
    })
    return out
