"""Pure functions from domain objects to Phonic wire shapes (every documented key).

Key order is part of the wire output (clients and tests compare bodies byte for byte), so
each shape is built in the order Phonic documents it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from openline.domain.agent import Agent
from openline.domain.conversation import (
    Conversation,
    ConversationAnalysis,
    ConversationItem,
    Evaluation,
    Extraction,
)
from openline.domain.events import (
    ConversationAnalyzed,
    ConversationEnded,
    ConversationTransferred,
    DomainEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from openline.domain.extraction import EvalPrompt, ExtractionSchema
from openline.domain.project import Project, Ref
from openline.domain.tool import Tool
from openline.services.masking import mask_headers
from openline.services.voices import VoiceInfo
from openline.services.webhooks import RenderedEvent

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


def ref(value: Ref) -> dict[str, str]:
    return {"id": value.id, "name": value.name}


def agent_json(agent: Agent) -> dict[str, Any]:
    numbers = [n.number for n in agent.phone_numbers]
    out: dict[str, Any] = {
        "id": agent.id,
        "name": agent.name,
        "project": ref(agent.project),
        "phone_number": numbers[0] if numbers else None,
        "phone_numbers": numbers,
        "is_disabled": agent.is_disabled,
        "version_number": agent.version_number,
    }
    spec = agent.spec.model_dump(mode="json")
    spec.pop("name", None)
    endpoint = spec.get("configuration_endpoint")
    if isinstance(endpoint, dict):  # secrets are never returned in full (services/masking)
        endpoint["headers"] = mask_headers(endpoint.get("headers")) or {}
    out.update(spec)
    out.update(_agent_values(agent, spec))
    if out.get("slug") is None:
        del out["slug"]  # a string in the official schema; an agent without one omits it
    out["custom_phone_numbers"] = agent.custom_numbers()
    return out


def _agent_values(agent: Agent, spec: dict[str, Any]) -> dict[str, Any]:
    """Keys the official Agent schema types as non-null, with the value they mean here: no
    integrations is ``[]`` and no retention policy is the standard one (keep everything).
    Both give back the same configuration when sent again (``AgentSpec`` normalises them)."""
    return {"integrations": spec.get("integrations") or [],
            "data_retention_policy": retention_json(spec.get("data_retention_policy"))}


def retention_json(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """Phonic's DataRetentionPolicy: ``{"zero_data_retention": true}`` alone, or the standard
    policy with both windows (``delete_after_hours: null`` = kept indefinitely)."""
    policy = policy or {}
    if policy.get("zero_data_retention"):
        return {"zero_data_retention": True}

    def window(key: str) -> dict[str, Any]:
        return {"delete_after_hours": (policy.get(key) or {}).get("delete_after_hours")}

    return {"zero_data_retention": False, "transcripts": window("transcripts"),
            "audio_recordings": window("audio_recordings")}


def project_json(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "default_agent": ref(project.default_agent) if project.default_agent else None,
        "active_conversations": project.active_conversations,
        "max_active_conversations": project.max_active_conversations,
    }


def tool_json(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": tool.id, "name": tool.name, "project": ref(tool.project)}
    spec = tool.spec.model_dump(mode="json")
    spec.pop("name", None)
    spec["endpoint_headers"] = mask_headers(spec.get("endpoint_headers"))
    out.update(spec)
    if tool.spec.type != "custom_context":
        out.pop("context", None)
    return out


#: Tool keys that the official schema types as non-null: left out while unset (clients read
#: a missing key as unset too). ``context`` is already left out by ``tool_json``.
_TOOL_KEYS_OMITTED_WHEN_NULL = ("endpoint_method", "endpoint_url", "endpoint_headers",
                                "agents_to_transfer_to")
_PARAMETER_KEYS_OMITTED_WHEN_NULL = ("item_type", "enum_values", "location")


def tool_view(tool: Tool) -> dict[str, Any]:
    """``tool_json`` as the tool routes answer it: without the ``null`` values that the
    official Tool and ToolParameter schemas do not allow."""
    out = tool_json(tool)
    for key in _TOOL_KEYS_OMITTED_WHEN_NULL:
        if out.get(key, ...) is None:
            del out[key]
    if isinstance(out.get("parameters"), list):
        out["parameters"] = [
            {k: v for k, v in p.items() if not (k in _PARAMETER_KEYS_OMITTED_WHEN_NULL
                                                 and v is None)}
            if isinstance(p, dict) else p for p in out["parameters"]]
    return out


def created_json(value: Agent | Tool | ExtractionSchema | EvalPrompt | Project
                 ) -> dict[str, str]:
    """The ``{id, name}`` answer of the create routes."""
    return {"id": value.id, "name": value.name}


def schema_json(schema: ExtractionSchema) -> dict[str, Any]:
    fields = [f.model_dump(mode="json") for f in schema.spec.fields]
    return {"id": schema.id, "name": schema.name, "prompt": schema.spec.prompt,
            "fields": fields}


def eval_prompt_json(prompt: EvalPrompt) -> dict[str, Any]:
    return {"id": prompt.id, "name": prompt.name, "prompt": prompt.prompt}


def voice_json(voice: VoiceInfo, audio_url: str | None) -> dict[str, Any]:
    return {"id": voice.id, "name": voice.name, "description": voice.description,
            "audio_url": audio_url}


def item_json(item: ConversationItem, redacted: bool = False) -> dict[str, Any]:
    return {
        "id": item.id, "item_idx": item.item_idx, "role": item.role,
        "live_transcript": item.live_transcript, "post_call_transcript": item.post_call_transcript,
        "redacted_transcript": (item.text or None) if redacted else None,
        "duration_ms": item.duration_ms,
        "started_at": iso(item.started_at), "voice_id": item.voice_id,
        "audio_speed": item.audio_speed, "system_prompt": item.system_prompt,
        "tool_calls": [dict(call) for call in item.tool_calls],
    }


def analysis_json(analysis: ConversationAnalysis) -> dict[str, Any]:
    return {"id": analysis.conversation_id, "latencies_ms": list(analysis.latencies_ms),
            "interruptions_count": analysis.interruptions_count}


def conversation_json(c: Conversation, audio_url: str | None) -> dict[str, Any]:
    config = c.settings
    out: dict[str, Any] = {
        "id": c.id,
        "agent": ({"id": c.agent.id, "name": c.agent.name, "is_deleted": c.agent.is_deleted}
                  if c.agent else None),
        "workspace": c.workspace.name,
        "project": ref(c.project),
        "external_id": c.external_id,
        "origin": c.origin,
        "model": "merritt",
        "is_live": c.is_live,
    }
    out.update({key: config.get(key) for key in CONVERSATION_CONFIG_KEYS})
    out["data_retention_policy"] = retention_json(config.get("data_retention_policy"))
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
        "task_results": {name: {"completed": r.completed, "reasoning": r.reasoning}
                         for name, r in c.task_results.items()},
        "items": [item_json(i, c.is_redacted) for i in c.items],
        "analysis": analysis_json(c.analysis),
        "is_redacted": c.is_redacted,
        "redacted_transcript": (c.post_call_transcript or c.live_transcript)
        if c.is_redacted else None,
        "metadata": c.metadata,
        "deletion_info": {"transcripts_deleted_at": iso(c.transcripts_deleted_at),
                          "audio_recordings_deleted_at": iso(c.audio_recordings_deleted_at)},
        "call_info": c.call_info,
    })
    return out


# --- post-call and webhooks ------------------------------------------------------------------

def extraction_json(extraction: Extraction) -> dict[str, Any]:
    """ConversationExtraction (note Phonic's camelCase ``isDeleted``); ``notes`` is ours."""
    return {"id": extraction.id,
            "schema": {"id": extraction.schema.id, "name": extraction.schema.name,
                       "isDeleted": extraction.schema_deleted},
            "result": dict(extraction.result), "created_at": iso(extraction.created_at),
            "notes": dict(extraction.notes)}


def eval_json(evaluation: Evaluation, *, with_conversation: bool = False) -> dict[str, Any]:
    """A conversation evaluation; the project-level listing adds ``conversation_id``."""
    out: dict[str, Any] = {"id": evaluation.id, "result": evaluation.result,
                           "prompt": ref(evaluation.prompt),
                           "created_at": iso(evaluation.created_at)}
    if with_conversation:
        out["conversation_id"] = evaluation.conversation_id
    out["reasoning"] = evaluation.reasoning
    return out


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """A webhook endpoint; its signing secret is shown once, in the create response only."""
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description,
            "events": list(endpoint.events), "created_at": iso(endpoint.created_at)}


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {"id": delivery.id, "message_id": delivery.message_id,
            "event_type": delivery.event_type, "attempt": delivery.attempt,
            "status_code": delivery.status_code, "success": delivery.success,
            "error": delivery.error, "duration_ms": delivery.duration_ms,
            "created_at": iso(delivery.created_at)}


class PhonicEvents:
    """The Phonic dialect's webhook bodies (``services.webhooks.EventRenderer``)."""

    def __init__(self, audio_url: Callable[[Conversation], str | None]) -> None:
        self.audio_url = audio_url

    def render(self, event: DomainEvent, at: datetime) -> RenderedEvent | None:
        conversation = event.conversation
        data: dict[str, Any]
        if isinstance(event, ConversationEnded):
            data = {"conversation": conversation_json(conversation, self.audio_url(conversation))}
        elif isinstance(event, ConversationAnalyzed):
            data = {"conversation": analysis_json(conversation.analysis)}
        elif isinstance(event, ConversationTransferred):
            data = {"conversation": {"id": conversation.id, "items": [
                        {"role": i.role, "text": i.text} for i in conversation.items]},
                    "transferred_to": event.transferred_to}
        else:  # pragma: no cover - every DomainEvent is handled above
            return None
        data["call_info"] = conversation.call_info
        body = {"event_type": event.kind, "created_at": iso(at), "data": data}
        return RenderedEvent(event.kind, json.dumps(body, separators=(",", ":")))
