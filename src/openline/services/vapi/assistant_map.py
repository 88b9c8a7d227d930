"""A Vapi assistant <-> an Openline agent: which assistant keys set which agent fields.

A Vapi assistant *is* an Openline agent (same ID), so Phonic clients see and call it, and an
agent made through Phonic is listed as an assistant. The assistant document the client sent
is kept as it is (unknown keys included, ``tables_vapi``); the keys below also set the
agent's configuration, and the assistant view writes them back from the agent, so a change
made through either dialect shows in both. The README's "Vapi dialect" section has the table.

Pure functions: no I/O, so the REST routes and the call set-up (``calls_create``) share them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from openline.domain.agent import AgentSpec
from openline.domain.agent_changes import AgentChanges, agent_changes_from
from openline.domain.errors import ValidationFailed
from openline.domain.limits import MAX_NAME_CHARS
from openline.domain.validation import LANGUAGE_CODES, first_error_message, parse
from openline.services.vapi import analysis_plan
from openline.services.vapi.checks import is_number, is_phrase_list
from openline.services.vapi.speaking_plans import speaking_plan_errors, speaking_plan_fields

FIRST_MESSAGE_MODES = ("assistant-speaks-first", "assistant-waits-for-user",
                       "assistant-speaks-first-with-model-generated-message")
#: Vapi's built-in "end the call" tool type -> Openline's built-in tool of that meaning.
END_CALL_TOOL = "natural_conversation_ending"
#: Provider names written for agents that carry no Vapi model/voice/transcriber of their own:
#: Vapi's own "vapi" provider, here meaning "the platform's configured model".
PLATFORM_PROVIDER = "vapi"
_SLUG_STRIP = re.compile(r"[^a-z0-9]+")
_MAX_VAPI_NAME = 40


def slug_for(name: str | None, fallback: str) -> str:
    """An agent name for a Vapi name: lowercase letters, digits and hyphens."""
    slug = _SLUG_STRIP.sub("-", (name or "").lower()).strip("-")
    return (slug or fallback)[:MAX_NAME_CHARS - 9].strip("-") or fallback


def check_body(body: Mapping[str, Any]) -> None:
    """400 for assistant keys whose type or range Vapi itself refuses (nothing is stored)."""
    errors: dict[str, str] = {}
    name = body.get("name")
    if "name" in body and name is not None and (not isinstance(name, str)
                                                or len(name) > _MAX_VAPI_NAME):
        errors["name"] = f"name must be a string of at most {_MAX_VAPI_NAME} characters"
    mode = body.get("firstMessageMode")
    if mode is not None and mode not in FIRST_MESSAGE_MODES:
        errors["firstMessageMode"] = ("firstMessageMode must be one of "
                                      + ", ".join(FIRST_MESSAGE_MODES))
    for key in ("firstMessage", "endCallMessage", "voicemailMessage"):
        if body.get(key) is not None and not isinstance(body[key], str):
            errors[key] = f"{key} must be a string"
    errors.update(_limit_errors(body))
    for key in ("model", "voice", "transcriber", "server", "analysisPlan", "artifactPlan",
                "metadata", "messagePlan", "startSpeakingPlan", "stopSpeakingPlan",
                "monitorPlan"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            errors[key] = f"{key} must be an object"
    for key in ("model", "voice", "transcriber"):
        part = body.get(key)
        if isinstance(part, dict) and not isinstance(part.get("provider"), str):
            errors[f"{key}.provider"] = f"{key}.provider is required"
    model = body.get("model")
    if isinstance(model, dict):
        errors.update(_model_errors(model))
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)


def _limit_errors(body: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    duration = body.get("maxDurationSeconds")
    if duration is not None and not (is_number(duration) and 10 <= duration <= 43200):
        errors["maxDurationSeconds"] = "maxDurationSeconds must be a number from 10 to 43200"
    phrases = body.get("endCallPhrases")
    if phrases is not None and not is_phrase_list(phrases, 2, 140):
        errors["endCallPhrases"] = "endCallPhrases must be strings of 2 to 140 characters"
    errors.update(analysis_plan.plan_errors(body.get("analysisPlan")))
    errors.update(speaking_plan_errors(body))
    return errors



def check_limits(assistant: Mapping[str, Any]) -> None:
    """400 for a call's assistant (inline, or stored with overrides) whose call limits
    (``call_limits``) or ``analysisPlan`` Vapi refuses."""
    errors = _limit_errors(assistant)
    if assistant.get("analysisPlan") is not None and not isinstance(
            assistant["analysisPlan"], dict):
        errors["analysisPlan"] = "analysisPlan must be an object"
    message = assistant.get("endCallMessage")
    if message is not None and not isinstance(message, str):
        errors["endCallMessage"] = "endCallMessage must be a string"
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)


def _model_errors(model: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    messages = model.get("messages")
    if messages is not None and not (isinstance(messages, list) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)):
        errors["model.messages"] = "model.messages must be a list of {role, content} objects"
    for key in ("tools", "toolIds"):
        if model.get(key) is not None and not isinstance(model[key], list):
            errors[f"model.{key}"] = f"model.{key} must be a list"
    ids = model.get("toolIds") or []
    if isinstance(ids, list) and not all(isinstance(i, str) for i in ids):
        errors["model.toolIds"] = "model.toolIds must be strings"
    return errors




def agent_fields(body: Mapping[str, Any], tool_names: Mapping[str, str]) -> dict[str, Any]:
    """The ``AgentSpec`` fields the keys present in ``body`` set (``tool_names``: Vapi tool
    ID -> the name of the Openline tool it maps onto, ``""`` when it maps onto none)."""
    fields: dict[str, Any] = {}
    _first_message(body, fields)
    if "firstMessageInterruptionsEnabled" in body:
        fields["is_welcome_message_interruptible"] = bool(
            body["firstMessageInterruptionsEnabled"])
    model = body.get("model")
    if isinstance(model, dict):
        _model(model, tool_names, fields)
    voice = body.get("voice")
    if isinstance(voice, dict):
        if isinstance(voice.get("voiceId"), str):
            fields["voice_id"] = voice["voiceId"]
        if is_number(voice.get("speed")):
            fields["audio_speed"] = round(float(voice["speed"]), 1)
    transcriber = body.get("transcriber")
    if isinstance(transcriber, dict):
        _transcriber(transcriber, fields)
    _timers(body, fields)
    if isinstance(body.get("backchannelingEnabled"), bool):  # legacy key (SDK 0.1.0)
        fields["enable_assistant_backchannel"] = body["backchannelingEnabled"]
    stop = body.get("stopSpeakingPlan")
    if isinstance(stop, dict) and is_number(stop.get("numWords")):
        fields["min_words_to_interrupt"] = max(1, int(stop["numWords"]))
    start = body.get("startSpeakingPlan")
    if isinstance(start, dict) and is_number(start.get("waitSeconds")):
        fields["vad_min_silence_duration_ms"] = round(float(start["waitSeconds"]) * 1000)
    return fields


def _first_message(body: Mapping[str, Any], fields: dict[str, Any]) -> None:
    if "firstMessage" not in body and "firstMessageMode" not in body:
        return
    mode = body.get("firstMessageMode") or "assistant-speaks-first"
    if "firstMessage" in body:
        fields["welcome_message"] = body.get("firstMessage") or ""
    if mode == "assistant-waits-for-user":
        fields["welcome_message"] = ""
        fields["generate_welcome_message"] = False
    else:
        fields["generate_welcome_message"] = (
            mode == "assistant-speaks-first-with-model-generated-message")


def _model(model: Mapping[str, Any], tool_names: Mapping[str, str],
           fields: dict[str, Any]) -> None:
    messages = model.get("messages")
    if isinstance(messages, list):
        system = [str(m.get("content") or "") for m in messages
                  if isinstance(m, dict) and m.get("role") == "system"]
        if system:
            fields["system_prompt"] = "\n\n".join(system)
    names: list[str] = []
    for tool_id in model.get("toolIds") or []:
        name = tool_names.get(tool_id)
        if name is None:
            raise ValidationFailed(f"Unknown tool: {tool_id}",
                                   {"model.toolIds": f"no such tool: {tool_id}"})
        if name:  # "": a Vapi tool with no Openline counterpart (served over server URL)
            names.append(name)
    for tool in model.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "endCall":
            names.append(END_CALL_TOOL)
    if "toolIds" in model or "tools" in model:
        fields["tools"] = list(dict.fromkeys(names))


def _transcriber(transcriber: Mapping[str, Any], fields: dict[str, Any]) -> None:
    language = transcriber.get("language")
    if isinstance(language, str):
        code = language.split("-")[0].lower()
        if code in LANGUAGE_CODES:
            fields["default_language"] = code
            fields["languages"] = [code]
    words: list[str] = []
    for key in ("keywords", "keyterm"):
        for word in transcriber.get(key) or []:
            if isinstance(word, str) and word:
                words.append(word.rsplit(":", 1)[0] if key == "keywords" else word)
    if words:
        fields["boosted_keywords"] = words


def _timers(body: Mapping[str, Any], fields: dict[str, Any]) -> None:
    silence = body.get("silenceTimeoutSeconds")  # legacy key (SDK 0.1.0-0.8.1)
    if silence is not None and is_number(silence):
        fields["no_input_end_conversation_sec"] = max(1, round(silence))
    plan = body.get("messagePlan")  # legacy key: idle messages are Openline's "poke"
    if isinstance(plan, dict):
        if is_number(plan.get("idleTimeoutSeconds")):
            fields["no_input_poke_sec"] = max(1, round(plan["idleTimeoutSeconds"]))
        idle = [m for m in plan.get("idleMessages") or [] if isinstance(m, str) and m]
        if idle:
            fields["no_input_poke_text"] = idle[0]


def call_limits(assistant: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SessionConfig`` fields a Vapi call takes from its assistant (with overrides)
    that no agent field carries: ``maxDurationSeconds``, ``endCallPhrases``,
    ``endCallMessage`` and the speaking plans' ``smartEndpointingEnabled``,
    ``voiceSeconds``, ``acknowledgementPhrases`` and ``interruptionPhrases`` (checked by
    ``check_body`` when the assistant was stored)."""
    limits: dict[str, Any] = speaking_plan_fields(assistant)
    duration = assistant.get("maxDurationSeconds")
    if isinstance(duration, int | float) and is_number(duration):
        limits["max_duration_s"] = float(duration)
    phrases = assistant.get("endCallPhrases")
    if isinstance(phrases, list):
        limits["end_call_phrases"] = tuple(p for p in phrases if isinstance(p, str) and p)
    message = assistant.get("endCallMessage")
    if isinstance(message, str):
        limits["end_call_message"] = message
    return limits



def new_spec(body: Mapping[str, Any], name: str,
             tool_names: Mapping[str, str]) -> AgentSpec:
    """The agent configuration of a new assistant (agent defaults where Vapi says nothing;
    without a first message an assistant waits for the caller, and its first message is not
    interruptible, as Vapi's defaults are)."""
    fields = {"welcome_message": "", "is_welcome_message_interruptible": False,
              **agent_fields(body, tool_names), "name": name}
    spec = in_vapi_terms(lambda: parse(AgentSpec, fields))
    errors = spec.rule_errors()
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)
    return spec


def changes_for(body: Mapping[str, Any], tool_names: Mapping[str, str]) -> AgentChanges:
    """The agent changes of an assistant PATCH (only the keys sent)."""
    changes, errors = agent_changes_from(agent_fields(body, tool_names))
    if changes is None:
        errors = rename_errors(errors)
        raise ValidationFailed(first_error_message(errors), errors)
    return changes


#: Agent field -> the assistant key that sets it (to name errors in the client's terms).
VAPI_KEYS = {
    "welcome_message": "firstMessage", "generate_welcome_message": "firstMessageMode",
    "is_welcome_message_interruptible": "firstMessageInterruptionsEnabled",
    "system_prompt": "model.messages", "tools": "model.toolIds", "voice_id": "voice.voiceId",
    "audio_speed": "voice.speed", "default_language": "transcriber.language",
    "languages": "transcriber.language", "boosted_keywords": "transcriber.keywords",
    "no_input_end_conversation_sec": "silenceTimeoutSeconds",
    "no_input_poke_sec": "messagePlan.idleTimeoutSeconds",
    "no_input_poke_text": "messagePlan.idleMessages",
    "min_words_to_interrupt": "stopSpeakingPlan.numWords",
    "vad_min_silence_duration_ms": "startSpeakingPlan.waitSeconds", "name": "name",
    "enable_assistant_backchannel": "backchannelingEnabled",
}


def rename_errors(errors: Mapping[str, str]) -> dict[str, str]:
    """``param_errors`` keyed by assistant keys instead of agent fields."""
    out: dict[str, str] = {}
    for key, message in errors.items():
        head, _, rest = key.partition(".")
        vapi = VAPI_KEYS.get(head, head)
        out.setdefault(vapi + ("." + rest if rest and "." not in vapi else ""), message)
    return out


def in_vapi_terms(build: Callable[[], AgentSpec]) -> AgentSpec:
    """Run ``build``; a ``ValidationFailed`` it raises names assistant keys instead."""
    try:
        return build()
    except ValidationFailed as exc:
        errors = rename_errors(exc.param_errors)
        raise ValidationFailed(first_error_message(errors), errors) from exc


def view(spec: AgentSpec, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The assistant keys that come from the agent, laid over the stored document."""
    out = dict(doc)
    stored = doc.get("name")
    # The Vapi name as sent, unless the agent was renamed through Phonic since.
    out["name"] = stored if isinstance(stored, str) and stored and spec.name.startswith(
        slug_for(stored, spec.name)) else spec.name
    if spec.generate_welcome_message:
        out["firstMessageMode"] = FIRST_MESSAGE_MODES[2]
    elif spec.welcome_message:
        out["firstMessageMode"] = FIRST_MESSAGE_MODES[0]
        out["firstMessage"] = spec.welcome_message
    else:
        out["firstMessageMode"] = FIRST_MESSAGE_MODES[1]
    out["firstMessageInterruptionsEnabled"] = spec.is_welcome_message_interruptible
    out["model"] = _model_view(spec, doc.get("model"))
    voice = dict(doc.get("voice") or {"provider": PLATFORM_PROVIDER})
    voice["voiceId"], voice["speed"] = spec.voice_id, spec.audio_speed
    out["voice"] = voice
    transcriber = dict(doc.get("transcriber") or {"provider": PLATFORM_PROVIDER})
    stored = transcriber.get("language")
    if not isinstance(stored, str) or stored.split("-")[0].lower() != spec.default_language:
        transcriber["language"] = spec.default_language
    out["transcriber"] = transcriber
    return out


def _model_view(spec: AgentSpec, stored: Any) -> dict[str, Any]:
    model = dict(stored) if isinstance(stored, dict) else {"provider": PLATFORM_PROVIDER}
    others = [m for m in model.get("messages") or []
              if isinstance(m, dict) and m.get("role") != "system"]
    model["messages"] = [{"role": "system", "content": spec.system_prompt}, *others]
    return model
