"""Server messages built outside a running call: ``assistant-request`` (with the reply
forms of spec section 6.3) before it starts, the ``end-of-call-report`` after its
post-call work is stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openline.domain.conversation import Conversation
from openline.domain.errors import ValidationFailed
from openline.services.vapi import live_assistant as la
from openline.services.vapi.server_messages import ServerError, ServerMessages, ServerTarget
from openline.store.tables_vapi_live import VapiCall


@dataclass(frozen=True)
class AssistantChoice:
    """The assistant a call runs: a stored one (``assistant_id``, with ``assistant`` its
    merged document) or an inline one; ``server``: where its messages go, when it came
    from an ``assistant-request`` (the server that chose it)."""

    assistant_id: str | None
    assistant: dict[str, Any]
    server: ServerTarget | None = None


class AssistantRequestFailed(ValidationFailed):
    """The server did not choose an assistant; ``code`` is Vapi's ``endedReason``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, {"assistant": reason}, code=reason)


async def ask_for_assistant(messages: ServerMessages, target: ServerTarget,
                            message: dict[str, Any]) -> AssistantChoice:
    """``assistant-request`` (7.5 s at most): ``{"assistantId"}`` or ``{"assistant"}``
    (with ``assistantOverrides``), or ``{"error"}``, which wins over everything. Squads,
    workflows and ``destination`` transfers are refused here (this call has no squad
    runner, and a socket call has no phone line to transfer)."""
    try:
        reply = await messages.request(target, message, la.ASSISTANT_REQUEST_TIMEOUT_S)
    except ServerError as exc:
        raise AssistantRequestFailed(f"assistant-request failed: {exc}",
                                     "assistant-request-failed") from exc
    if reply.get("error") is not None:
        raise AssistantRequestFailed(f"assistant-request returned an error: {reply['error']}",
                                     "assistant-request-returned-error")
    overrides = reply.get("assistantOverrides")
    if overrides is not None and not isinstance(overrides, dict):
        raise AssistantRequestFailed("assistant-request: assistantOverrides must be an object",
                                     "assistant-request-returned-invalid-assistant")
    if isinstance(reply.get("assistantId"), str):
        return AssistantChoice(reply["assistantId"], overrides or {})
    if isinstance(reply.get("assistant"), dict):
        return AssistantChoice(None, la.merge_overrides(reply["assistant"], overrides))
    if reply.get("destination") is not None:
        raise AssistantRequestFailed("assistant-request returned a destination; this call "
                                     "cannot be forwarded",
                                     "assistant-request-returned-forwarding-phone-number")
    for key in ("squadId", "squad", "workflowId", "workflow"):
        if reply.get(key) is not None:
            raise AssistantRequestFailed(f"assistant-request returned {key}, which this "
                                         "server does not run",
                                         "assistant-request-returned-invalid-assistant")
    raise AssistantRequestFailed("assistant-request returned no assistant",
                                 "assistant-request-returned-no-assistant")


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def artifact(conv: Conversation, recording_url: str | None,
             variables: dict[str, Any] | None) -> dict[str, Any]:
    """The call's ``artifact`` from its stored conversation (refined transcripts when the
    post-call work has them)."""
    messages: list[dict[str, Any]] = []
    openai: list[dict[str, Any]] = []
    lines: list[str] = []
    for item in conv.items:
        text = item.text
        if not text:
            continue
        role = "user" if item.role == "user" else "bot"
        at = item.started_at or conv.started_at
        seconds = (at - conv.started_at).total_seconds()
        duration = int(item.duration_ms or 0)
        time_ms = int(at.timestamp() * 1000)
        messages.append({"role": role, "message": text, "time": time_ms,
                         "endTime": time_ms + duration, "secondsFromStart": round(seconds, 3),
                         "duration": duration})
        openai.append({"role": "user" if role == "user" else "assistant", "content": text})
        lines.append(f"{'User' if role == 'user' else 'AI'}: {text}")
    out: dict[str, Any] = {"messages": messages, "messagesOpenAIFormatted": openai,
                           "transcript": "\n".join(lines)}
    if recording_url:
        out["recordingUrl"] = recording_url
        out["recording"] = {"mono": {"combinedUrl": recording_url}}
    if variables:
        out["variableValues"] = variables
    return out


def end_of_call_report(conv: Conversation, row: VapiCall,
                       recording_url: Callable[[Conversation], str | None] | None
                       ) -> dict[str, Any]:
    """The ``end-of-call-report`` message of an ended call."""
    request = row.request or {}
    reason = row.ended_reason or la.ended_reason(conv.ended_by)
    url = recording_url(conv) if recording_url else None
    overrides = request.get("assistantOverrides") or {}
    inline = request.get("assistant") or {}
    variables = {**(inline.get("variableValues") or {}),
                 **(overrides.get("variableValues") or {})}
    duration_ms = conv.duration_ms or 0.0
    call = {"id": conv.id, "orgId": conv.workspace.id, "type": row.call_type,
            "status": "ended", "endedReason": reason, "createdAt": _iso(row.created_at),
            "startedAt": _iso(conv.started_at), "endedAt": _iso(conv.ended_at)}
    if conv.agent is not None:
        call["assistantId"] = conv.agent.id
    message: dict[str, Any] = {
        "type": "end-of-call-report", "call": call, "endedReason": reason, "cost": 0,
        "costs": [], "artifact": artifact(conv, url, variables),
        "analysis": {"summary": conv.summary} if conv.summary else {},
        "startedAt": _iso(conv.started_at), "endedAt": _iso(conv.ended_at),
        "durationMs": duration_ms, "durationSeconds": round(duration_ms / 1000, 3)}
    if url:
        message["recordingUrl"] = url
    if request.get("customer"):
        message["customer"] = request["customer"]
    return message
