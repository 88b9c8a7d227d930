"""A conversation as a Vapi call: status, type, ``endedReason`` (spec §5.2), messages and the
``artifact`` (transcript, messages, recording URL, analysis outputs).

A Vapi call *is* an Openline conversation (same ID). What a Vapi client sent when it created
or renamed the call (``name``, ``customer``, ``phoneNumberId``, ...) is kept as the call's
document (kind ``call`` in ``tables_vapi``) and echoed; everything else comes from the
conversation. Pure functions: the REST routes and the server-URL messages share them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from openline.domain.conversation import Conversation, ConversationItem

#: Openline's ``ended_by`` -> Vapi's ``endedReason``. Values other parts of Openline may
#: add later (maximum duration, end-call phrase) are mapped already.
ENDED_REASONS: dict[str, str] = {
    "user": "customer-ended-call",
    "user_canceled": "manually-canceled",
    "user_validation_failed": "call.start.error-get-resources-validation",
    "assistant": "assistant-ended-call",
    "assistant_silence_limit_reached": "silence-timed-out",
    "configuration_endpoint_timed_out": "assistant-request-failed",
    "configuration_endpoint_error": "assistant-request-returned-error",
    "configuration_endpoint_invalid_response": "assistant-request-returned-invalid-assistant",
    "voicemail": "voicemail",
    "transferred": "assistant-forwarded-call",
    "max_duration": "exceeded-max-duration",
    "end_call_phrase": "assistant-said-end-call-phrase",
    # how phone calls that never connected end (services/telephony: Twilio and SIP)
    "call_busy": "customer-busy",
    "call_no_answer": "customer-did-not-answer",
    "call_canceled": "manually-canceled",
    "call_deleted": "call-deleted",
    "error": "call.in-progress.error-vapifault-worker-died",
}
#: A phone call that never connected, by how it was to be carried.
_FAILED_TO_CONNECT = {"twilio": "twilio-failed-to-connect-call",
                      "sip": "call.in-progress.error-sip-outbound-call-failed-to-connect"}
#: Keys a call's document may hold that the view never takes from it (they are computed).
_COMPUTED = ("id", "orgId", "createdAt", "updatedAt", "startedAt", "endedAt", "status",
             "endedReason", "artifact", "messages")
_ROLES = {"user": "user", "assistant": "bot", "system": "system"}


def ended_reason(ended_by: str | None, origin: str) -> str | None:
    """Vapi's ``endedReason`` for how a conversation ended (``None`` while it runs)."""
    if ended_by is None:
        return None
    if ended_by == "call_failed":
        return _FAILED_TO_CONNECT.get(origin, "customer-did-not-answer")
    return ENDED_REASONS.get(ended_by, "call.in-progress.error-vapifault-worker-died")


def iso(value: datetime | None) -> str | None:
    """``2024-09-10T11:14:12.339Z``, as Vapi writes times."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def call_type(c: Conversation, doc: Mapping[str, Any]) -> str:
    """``inboundPhoneCall`` | ``outboundPhoneCall`` | ``webCall`` | ``vapi.websocketCall``."""
    return type_for(c.origin, c.call_info, doc)


def type_for(origin: str, call_info: Mapping[str, Any] | None,
             doc: Mapping[str, Any]) -> str:
    """A call's type: as its document says, else from the conversation's origin (a Twilio
    call whose SID was known at the start came in; one dialled out learns it later)."""
    if isinstance(doc.get("type"), str):
        return str(doc["type"])
    if origin in ("twilio", "sip"):
        inbound = bool((call_info or {}).get("twilio_call_sid")) or origin == "sip"
        return "inboundPhoneCall" if inbound else "outboundPhoneCall"
    if origin == "browser":
        return "webCall"
    return "vapi.websocketCall"


def status(c: Conversation, doc: Mapping[str, Any]) -> str:
    if not c.is_live:
        return "ended"
    if doc.get("status") in ("queued", "ringing", "forwarding", "scheduled"):
        return str(doc["status"])
    return "in-progress"


def messages(c: Conversation) -> list[dict[str, Any]]:
    """The message union of ``call.messages`` / ``artifact.messages`` (spec §5.3)."""
    out: list[dict[str, Any]] = []
    start = c.started_at.timestamp()
    system = c.settings.get("system_prompt")
    if isinstance(system, str) and system:
        out.append({"role": "system", "message": system, "time": int(start * 1000),
                    "secondsFromStart": 0})
    for item in c.items:
        out.extend(_item_messages(item, start))
    return out


def _item_messages(item: ConversationItem, start: float) -> list[dict[str, Any]]:
    at = item.started_at.timestamp() if item.started_at else start
    base = {"time": int(at * 1000), "secondsFromStart": round(at - start, 3)}
    out: list[dict[str, Any]] = []
    calls = [call for call in item.tool_calls if isinstance(call, Mapping)]
    if calls:
        out.append({"role": "tool_calls", **base, "message": "", "toolCalls": [
            {"id": str(call.get("tool_call_id") or call.get("id") or ""), "type": "function",
             "function": {"name": str((call.get("tool") or {}).get("name", "")),
                          "arguments": _json(call.get("arguments") or call.get("parameters"))}}
            for call in calls]})
        for call in calls:
            out.append({"role": "tool_call_result", **base,
                        "toolCallId": str(call.get("tool_call_id") or call.get("id") or ""),
                        "name": str((call.get("tool") or {}).get("name", "")),
                        "result": _json(call.get("output", call.get("response_body",
                                                                    call.get("status"))))})
    if item.text:
        message: dict[str, Any] = {"role": _ROLES.get(item.role, item.role),
                                   "message": item.text, **base}
        if item.duration_ms is not None:
            message["endTime"] = int(at * 1000 + item.duration_ms)
            message["duration"] = item.duration_ms
        out.insert(0 if item.role == "user" else len(out), message)
    return out


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def transcript(c: Conversation, plan: Mapping[str, Any] | None = None) -> str:
    """``AI: ...`` / ``User: ...`` lines (labels from ``artifactPlan.transcriptPlan``)."""
    plan = plan or {}
    ai, user = plan.get("assistantName") or "AI", plan.get("userName") or "User"
    lines = [f"{user if i.role == 'user' else ai}: {i.text}" for i in c.items
             if i.role in ("user", "assistant") and i.text]
    return "\n".join(lines)


def openai_messages(c: Conversation) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    system = c.settings.get("system_prompt")
    if isinstance(system, str) and system:
        out.append({"role": "system", "content": system})
    out.extend({"role": "user" if i.role == "user" else "assistant", "content": i.text}
               for i in c.items if i.role in ("user", "assistant") and i.text)
    return out


def call_json(c: Conversation, doc: Mapping[str, Any] | None = None, *,
              recording_url: str | None = None,
              assistant: Mapping[str, Any] | None = None,
              reason: str | None = None) -> dict[str, Any]:
    """The Vapi ``Call`` of conversation ``c`` (``doc``: its stored Vapi document;
    ``reason``: the ``endedReason`` the live call recorded when it says more than
    ``ended_by``, e.g. ``assistant-ended-call-after-message-spoken``)."""
    doc = doc or {}
    out: dict[str, Any] = {k: v for k, v in doc.items() if k not in _COMPUTED}
    updated = c.ended_at or c.started_at
    out.update({
        "id": c.id, "orgId": c.workspace.id, "createdAt": iso(c.started_at),
        "updatedAt": iso(updated), "startedAt": iso(c.started_at), "type": call_type(c, doc),
        "status": status(c, doc), "cost": 0,
    })
    if c.agent is not None and "assistantId" not in doc and "assistant" not in doc:
        out["assistantId"] = c.agent.id
    if c.ended_at is not None:
        out["endedAt"] = iso(c.ended_at)
        out["endedReason"] = reason or ended_reason(c.ended_by, c.origin)
    info = c.call_info or {}
    if c.origin == "twilio":
        out.setdefault("phoneCallProvider", "twilio")
        out.setdefault("phoneCallTransport", "pstn")
        if info.get("twilio_call_sid"):
            out.setdefault("phoneCallProviderId", info["twilio_call_sid"])
    elif c.origin == "sip":
        out.setdefault("phoneCallProvider", "vapi")
        out.setdefault("phoneCallTransport", "sip")
    if "customer" not in out and info:
        number = info.get("from_phone_number") if out["type"] == "inboundPhoneCall" \
            else info.get("to_phone_number")
        if number:
            out["customer"] = {"number": number}
    msgs = messages(c)
    out["messages"] = msgs
    out["artifact"] = _artifact(c, doc, msgs, recording_url, assistant or {})
    out["analysis"] = _analysis(c, doc)
    out["transcript"] = out["artifact"]["transcript"]  # older responses mirrored these
    if recording_url:
        out["recordingUrl"] = recording_url
    if c.summary:
        out["summary"] = c.summary
    return out


def _artifact(c: Conversation, doc: Mapping[str, Any], msgs: list[dict[str, Any]],
              recording_url: str | None, assistant: Mapping[str, Any]) -> dict[str, Any]:
    plan = (doc.get("artifactPlan") or assistant.get("artifactPlan") or {})
    plan = plan if isinstance(plan, Mapping) else {}
    transcript_plan = plan.get("transcriptPlan") if isinstance(plan.get("transcriptPlan"),
                                                               Mapping) else None
    stored = doc.get("artifact") if isinstance(doc.get("artifact"), Mapping) else {}
    out: dict[str, Any] = dict(stored or {})
    out.update({"messages": msgs, "messagesOpenAIFormatted": openai_messages(c),
                "transcript": transcript(c, transcript_plan)})
    variables = c.settings.get("template_variables")
    if isinstance(variables, Mapping) and "variableValues" not in out:
        out["variableValues"] = dict(variables)
    if recording_url:
        out["recordingUrl"] = out["stereoRecordingUrl"] = recording_url
        out["recording"] = {"stereoUrl": recording_url}
    latencies = list(c.latencies_ms)
    out["performanceMetrics"] = {
        "turnLatencies": [{"turnLatency": v} for v in latencies],
        "turnLatencyAverage": (sum(latencies) / len(latencies)) if latencies else 0,
        "numUserInterrupted": c.interruptions_count,
    }
    return out


def _analysis(c: Conversation, doc: Mapping[str, Any]) -> dict[str, Any]:
    stored = doc.get("analysis")
    out: dict[str, Any] = dict(stored) if isinstance(stored, Mapping) else {}
    if c.summary and "summary" not in out:
        out["summary"] = c.summary
    return out
