"""Phonic request bodies -> typed service commands, and their OpenAPI documentation.

Bodies are parsed here by hand (``deps.json_body`` reads the JSON) so that every error
uses Phonic's error shape and wording; the domain models validate the values. One parse
function per purpose: create bodies validate a whole model, update bodies one field at a
time into ``*Changes`` (absent = ``UNSET``, ``null`` = clear).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from openline.audio.codecs import WIRE_FORMATS
from openline.domain.agent import AgentSpec, ConfigurationEndpoint
from openline.domain.agent_changes import agent_changes_from
from openline.domain.conversation import parse_started_at
from openline.domain.errors import ValidationFailed
from openline.domain.extraction import EvalPromptSpec, ExtractionSchemaSpec, schema_changes_from
from openline.domain.limits import (
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    MAX_REFERENCES,
    MAX_SHORT_CHARS,
    MAX_URL_CHARS,
    control_char_error,
)
from openline.domain.phone_number import PhoneAssignment, sip_settings
from openline.domain.project import check_max_active
from openline.domain.tool import ToolSpec
from openline.domain.tool_changes import parse_tool_changes
from openline.domain.unset import UNSET, Unset
from openline.domain.validation import (
    check_e164,
    check_resource_name,
    first_error_message,
    param_errors_from,
    parse,
)
from openline.services import commands as c


def body_doc(model: type[BaseModel] | dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body follows ``model``."""
    schema = model if isinstance(model, dict) else model.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    schema = dict(schema)
    schema.pop("$defs", None)
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": schema}}}}


def defs_of(*models: type[BaseModel]) -> dict[str, Any]:
    """Component schemas referenced by ``body_doc`` documents."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.get("$defs", {}))
        out[model.__name__] = {k: v for k, v in schema.items() if k != "$defs"}
    return out


def _validate(model: type[BaseModel], data: Mapping[str, Any]
              ) -> tuple[Any, dict[str, str]]:
    try:
        return model.model_validate(dict(data)), {}
    except ValidationError as exc:
        return None, param_errors_from(exc)


# --- agents ----------------------------------------------------------------------------------

class AgentPhoneBody(BaseModel):
    """The phone-number part of a Phonic agent body: a mode, not a number."""

    model_config = ConfigDict(extra="ignore")

    phone_number: Literal["assign-automatically", "custom"] | None = None
    custom_phone_number: str | None = None
    custom_phone_numbers: list[str] | None = None

    @field_validator("custom_phone_number")
    @classmethod
    def _one(cls, value: str | None) -> str | None:
        return None if value is None else check_e164(value)

    @field_validator("custom_phone_numbers")
    @classmethod
    def _many(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for number in value:
            check_e164(number)
        if len(set(value)) != len(value):
            raise ValueError("custom_phone_numbers must be unique")
        return value

    def assignment(self) -> PhoneAssignment:
        """The domain's assignment (``phone_number: null`` with numbers means custom)."""
        numbers = list(self.custom_phone_numbers or [])
        if self.custom_phone_number and self.custom_phone_number not in numbers:
            numbers.append(self.custom_phone_number)  # the deprecated singular field
        if self.phone_number == "assign-automatically":
            return PhoneAssignment("pool")
        if self.phone_number == "custom" or numbers:
            return PhoneAssignment("custom", tuple(numbers))
        return PhoneAssignment("none")


AGENT_PHONE_FIELDS = frozenset(AgentPhoneBody.model_fields)


def _phone_part(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k in AGENT_PHONE_FIELDS}


def agent_create(body: Mapping[str, Any], project: str | None) -> c.CreateAgent:
    """``POST /agents`` and ``PUT /agents/upsert``: every error of the body at once."""
    spec, errors = _validate(AgentSpec, {k: v for k, v in body.items()
                                         if k not in AGENT_PHONE_FIELDS})
    if spec is not None:
        errors.update(spec.rule_errors())
    phone, phone_errors = _validate(AgentPhoneBody, _phone_part(body))
    assignment: PhoneAssignment | None = None
    if phone is not None:
        wanted = phone.custom_phone_numbers or phone.custom_phone_number
        assignment = phone.assignment() if "phone_number" in body or wanted else None
        phone_errors = assignment.rule_errors() if assignment else {}
    errors.update(phone_errors)
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)
    return c.CreateAgent(spec, project, assignment)


def agent_update(body: Mapping[str, Any], key: c.Key) -> c.UpdateAgent:
    """``PATCH /agents/{name}``: only the fields sent change; numbers change when
    ``phone_number`` or ``custom_phone_numbers`` is sent (the latter alone means custom)."""
    changes, errors = agent_changes_from({k: v for k, v in body.items()
                                          if k not in AGENT_PHONE_FIELDS})
    part = _phone_part(body)
    if "custom_phone_numbers" in part and "phone_number" not in part:
        part["phone_number"] = "custom"
    phone, phone_errors = _validate(AgentPhoneBody, part)
    assignment: PhoneAssignment | Unset = UNSET
    if phone is not None and "phone_number" in part:
        assignment = phone.assignment()
    if errors and not phone_errors and assignment is not UNSET:
        # Reported together with the field errors; otherwise the service checks the rules
        # of the merged configuration and the assignment at once.
        phone_errors = assignment.rule_errors()
    errors.update(phone_errors)
    if errors or changes is None:
        raise ValidationFailed(first_error_message(errors), errors)
    return c.UpdateAgent(key, changes, assignment)


def _number(body: Mapping[str, Any]) -> str:
    value = body.get("phone_number")
    try:
        if not isinstance(value, str):
            raise ValueError("phone_number is required")
        return check_e164(value)
    except ValueError as exc:
        raise ValidationFailed(f"Invalid parameters: {exc}", {"phone_number": str(exc)}) from exc


def _endpoint(body: Mapping[str, Any]) -> ConfigurationEndpoint | None:
    raw = body.get("configuration_endpoint")
    if raw is None:
        return None
    try:
        return ConfigurationEndpoint.model_validate(raw)
    except ValidationError as exc:
        errors = {f"configuration_endpoint.{k}": v for k, v in param_errors_from(exc).items()}
        raise ValidationFailed("Invalid configuration_endpoint", errors) from exc


def custom_number(body: Mapping[str, Any], key: c.Key, sip_address: str | None,
                  sip_username: str | None, sip_password: str | None) -> c.AddCustomNumber:
    """``POST .../custom-phone-numbers``; the SIP credentials come in ``X-Sip-*`` headers."""
    number, endpoint = _number(body), _endpoint(body)
    given = [sip_address, sip_username, sip_password]
    if any(given) and not all(given):
        raise ValidationFailed(
            "X-Sip-Address, X-Sip-Auth-Username and X-Sip-Auth-Password go together",
            {"X-Sip-Address": "all three SIP headers must be provided together"},
        )
    raw = body.get("sip")
    transport = encryption = None
    if raw is not None:
        if not isinstance(raw, dict):
            raise ValidationFailed("Invalid sip", {"sip": "must be an object"})
        transport, encryption = raw.get("transport", "auto"), raw.get("media_encryption",
                                                                      "disabled")
    sip = sip_settings(transport, encryption, sip_address, sip_username, sip_password)
    return c.AddCustomNumber(key, number, sip if raw is not None or sip_address else None,
                             endpoint)


def number_removal(body: Mapping[str, Any], key: c.Key) -> c.RemoveCustomNumber:
    return c.RemoveCustomNumber(key, _number(body))


def number_update(body: Mapping[str, Any], key: c.Key) -> c.UpdatePhoneNumber:
    number, endpoint = _number(body), _endpoint(body)
    return c.UpdatePhoneNumber(key, number,
                               endpoint if "configuration_endpoint" in body else UNSET)


# --- tools, extraction schemas, projects, eval prompts ---------------------------------------

def tool_create(body: Mapping[str, Any], project: str | None) -> c.CreateTool:
    return c.CreateTool(parse(ToolSpec, body), project)


def tool_update(body: Mapping[str, Any], key: c.Key) -> c.UpdateTool:
    return c.UpdateTool(key, parse_tool_changes(body))


def schema_create(body: Mapping[str, Any], project: str | None) -> c.CreateExtractionSchema:
    return c.CreateExtractionSchema(parse(ExtractionSchemaSpec, body), project)


def schema_update(body: Mapping[str, Any], key: c.Key) -> c.UpdateExtractionSchema:
    return c.UpdateExtractionSchema(key, schema_changes_from(body))


def _project_name(value: Any) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError("name must be a string")
        return check_resource_name(value)
    except ValueError as exc:
        raise ValidationFailed(f"Invalid parameters: {exc}", {"name": str(exc)}) from exc


def project_create(body: Mapping[str, Any]) -> c.CreateProject:
    return c.CreateProject(_project_name(body.get("name")))


def project_update(body: Mapping[str, Any], name_or_id: str) -> c.UpdateProject:
    name = _project_name(body["name"]) if "name" in body else UNSET
    limit = body.get("max_active_conversations", UNSET)
    if limit is not UNSET:
        try:
            check_max_active(limit)
        except ValueError as exc:
            raise ValidationFailed("Invalid parameters",
                                   {"max_active_conversations": str(exc)}) from exc
    agent = body.get("default_agent", UNSET)
    if agent is not UNSET and agent is not None and not isinstance(agent, str):
        raise ValidationFailed("Invalid parameters", {"default_agent": "must be an agent name"})
    check_text_fields(body, {"default_agent": MAX_SHORT_CHARS})
    return c.UpdateProject(name_or_id, name, agent, limit)


def eval_prompt_create(body: Mapping[str, Any], project: str) -> c.CreateEvalPrompt:
    return c.CreateEvalPrompt(project, parse(EvalPromptSpec, body))


# --- conversations, post-call, webhooks, speech ----------------------------------------------

def conversation_list(project: str | None, external_id: str | None, duration_min: int | None,
                      duration_max: int | None, started_at_min: str | None,
                      started_at_max: str | None, before: str | None, after: str | None,
                      limit: int) -> c.ListConversations:
    """``GET /conversations``: a date alone means the whole day (from its start or to its end)."""
    low = parse_started_at(started_at_min, "started_at_min", end_of_day=False) \
        if started_at_min else None
    high = parse_started_at(started_at_max, "started_at_max", end_of_day=True) \
        if started_at_max else None
    return c.ListConversations(project, external_id, duration_min, duration_max, low, high,
                               before, after, limit)


def text_problem(value: Any, most: int) -> str | None:
    """Why ``value`` is not an acceptable stored string (``None`` when it is)."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > most:
        return f"at most {most} characters"
    return control_char_error(value)


def check_text_fields(body: Mapping[str, Any], limits: Mapping[str, int]) -> None:
    """400 naming every field of ``limits`` that is present, not null and not clean text."""
    errors = {key: problem for key, most in limits.items()
              if body.get(key) is not None and (problem := text_problem(body[key], most))}
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)


def _reference(body: Mapping[str, Any], key: str) -> str | None:
    """An optional ID in the body (a wrong type or a control character is a 400)."""
    check_text_fields(body, {key: MAX_SHORT_CHARS})
    value = body.get(key)
    return value if isinstance(value, str) else None


def extraction_run(body: Mapping[str, Any], conversation_id: str) -> c.RunExtraction:
    return c.RunExtraction(conversation_id, _reference(body, "schema_id"))


def evaluation_run(body: Mapping[str, Any], conversation_id: str) -> c.RunEvaluation:
    return c.RunEvaluation(conversation_id, _reference(body, "prompt_id"))


def string_list(body: Mapping[str, Any], key: str, most_items: int = MAX_REFERENCES,
                most_chars: int = MAX_SHORT_CHARS) -> list[str] | None:
    """An optional list of short clean strings (``None`` when absent or null)."""
    value = body.get(key)
    if value is None:
        return None
    problem = None
    if not isinstance(value, list):
        problem = "must be a list of strings"
    elif len(value) > most_items:
        problem = f"at most {most_items} items"
    else:
        problem = next((p for v in value if (p := text_problem(v, most_chars))), None)
    if problem:
        raise ValidationFailed(first_error_message({key: problem}), {key: problem})
    return list(value)


def workspace_update(body: Mapping[str, Any]) -> dict[str, Any]:
    """``PATCH /workspace``: bounded, clean values (the auth service checks the rest)."""
    check_text_fields(body, {"logo_url": MAX_URL_CHARS})
    for key in ("invite_link_allowed_domains", "ip_allowlist"):
        string_list(body, key)
    return dict(body)


def key_name(body: Mapping[str, Any]) -> str:
    """An API key's name: required, at most ``MAX_NAME_CHARS`` characters of clean text."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("name is required", {"name": "required"})
    check_text_fields(body, {"name": MAX_NAME_CHARS})
    return name


def webhook_endpoint_create(body: Mapping[str, Any]) -> c.CreateWebhookEndpoint:
    url = body.get("url")
    if not isinstance(url, str):
        raise ValidationFailed("Invalid parameters: url", {"url": "is required"})
    check_text_fields(body, {"url": MAX_URL_CHARS, "description": MAX_DESCRIPTION_CHARS})
    events = body.get("events")
    if events is not None and not (isinstance(events, list)
                                   and all(isinstance(e, str) for e in events)):
        raise ValidationFailed("Invalid parameters: events",
                               {"events": "must be a non-empty list of event types"})
    events = string_list(body, "events")
    description = body.get("description")
    return c.CreateWebhookEndpoint(url, None if events is None else tuple(events),
                                   description if isinstance(description, str) else None)


def synthesize(body: Mapping[str, Any]) -> c.Synthesize:
    """``POST /tts``: wrong types are refused here, wrong values by the speech service."""
    errors: dict[str, str] = {}
    text = body.get("text")
    if not isinstance(text, str):
        errors["text"] = "at least 1 character"
    speed = body.get("speed", 1.2)
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        errors["speed"] = "a number between 0.5 and 1.5"
    fmt = body.get("output_format", "pcm_44100")
    if not isinstance(fmt, str):
        errors["output_format"] = f"one of {', '.join(WIRE_FORMATS)}"
    voice = body.get("voice_id")
    if voice is not None and not isinstance(voice, str):
        errors["voice_id"] = "a voice id"
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        errors["model"] = "a model name"
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)
    assert isinstance(text, str) and isinstance(fmt, str)
    return c.Synthesize(text, voice if isinstance(voice, str) and voice else None,
                        float(speed), fmt)
