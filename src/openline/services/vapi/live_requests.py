"""Server messages built outside a running call: ``assistant-request`` (with the reply
forms of spec section 6.3) before it starts, the ``end-of-call-report`` after its
post-call work is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openline.domain.conversation import Conversation
from openline.domain.errors import ValidationFailed
from openline.services.vapi import call_view
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

    def __init__(self, message: str, reason: str, spoken: str | None = None) -> None:
        super().__init__(f"{message} ({reason})", {"assistant": reason}, code=reason)
        #: what a phone caller is told (the reply's ``error``, meant to be spoken)
        self.spoken = spoken


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
                                     "assistant-request-returned-error", str(reply["error"]))
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


def end_of_call_report(conv: Conversation, row: VapiCall, doc: dict[str, Any],
                       recording_url: str | None) -> dict[str, Any]:
    """The ``end-of-call-report`` of an ended call: the call as ``GET /call`` shows it, its
    ``artifact`` (transcript, messages, recording) and ``analysis`` (the summary)."""
    call = call_view.call_json(conv, doc, recording_url=recording_url)
    reason = row.ended_reason or call.get("endedReason")
    if row.ended_reason:
        call["endedReason"] = row.ended_reason
    duration_ms = conv.duration_ms or 0.0
    message: dict[str, Any] = {
        "type": "end-of-call-report", "endedReason": reason, "cost": 0, "costs": [],
        "artifact": call.pop("artifact"), "analysis": call.pop("analysis"),
        "startedAt": call.get("startedAt"), "endedAt": call.get("endedAt"),
        "durationMs": duration_ms, "durationSeconds": round(duration_ms / 1000, 3)}
    for key in ("messages", "transcript", "summary", "recordingUrl"):
        call.pop(key, None)  # they are in the artifact
    message["call"] = call
    if recording_url:
        message["recordingUrl"] = recording_url
    if isinstance(doc.get("customer"), dict):
        message["customer"] = doc["customer"]
    if isinstance((row.request or {}).get("assistant"), dict):
        message["assistant"] = row.request["assistant"]
    return message
