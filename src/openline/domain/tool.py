"""Tools: the definition, its type-specific rules, and its JSON Schema for the LLM."""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openline.domain.errors import ValidationFailed
from openline.domain.limits import (
    JSON_CHECK,
    MAX_ENUM_VALUES,
    MAX_HEADERS,
    MAX_REFERENCES,
    MAX_TOOL_NAME_CHARS,
    MAX_TOOL_PARAMETERS,
    DescriptionText,
    HeaderNameText,
    HeaderValueText,
    MessageText,
    PromptText,
    ShortText,
    UrlText,
    check_document_size,
)
from openline.domain.project import Ref
from openline.domain.validation import check_e164, check_tool_name, first_error_message

ToolType = Literal[
    "custom_context",
    "custom_webhook",
    "custom_websocket",
    "built_in_transfer_to_phone_number",
    "built_in_transfer_to_agent",
]
ParamType = Literal["string", "integer", "number", "boolean", "array", "enum"]
ItemType = Literal["string", "integer", "number", "boolean"]
Location = Literal["request_body", "query_string", "url_path"]

#: Names Phonic injects into every call; a tool may not declare them.
RESERVED_PARAMETER_NAMES = frozenset(
    {"call_info", "conversation_id", "from_phone_number", "pre_tool_text",
     "to_phone_number", "twilio_call_sid"}
)
#: Tool types whose flags are documented as "only available for" a subset.
_SPEECH_WAIT_TYPES = {"custom_webhook", "custom_websocket"}
_CUSTOM_TYPES = {"custom_context", "custom_webhook", "custom_websocket"}
_TRANSFER_TYPES = {"built_in_transfer_to_phone_number", "built_in_transfer_to_agent"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
_MAX_SCHEMA_DEPTH = 5


class ToolParameter(BaseModel):
    """One parameter in the flat-list form."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    type: ParamType
    item_type: ItemType | None = None
    enum_values: list[ShortText] | None = Field(default=None, max_length=MAX_ENUM_VALUES)
    name: ShortText = Field(min_length=1, max_length=MAX_TOOL_NAME_CHARS)
    description: DescriptionText = ""
    is_required: bool = False
    location: Location | None = None


class ToolSpec(BaseModel):
    """Validated, storable tool definition (no identity)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    name: str
    description: DescriptionText = Field(min_length=1)
    type: ToolType
    execution_mode: Literal["sync", "async"]
    parameters: (Annotated[list[ToolParameter], Field(max_length=MAX_TOOL_PARAMETERS)]
                 | Annotated[dict[str, Any], JSON_CHECK]) = Field(default_factory=list)
    parameter_locations: dict[ShortText, Location] | None = Field(
        default=None, max_length=MAX_TOOL_PARAMETERS)
    endpoint_method: Literal["GET", "POST"] | None = None
    endpoint_url: UrlText | None = None
    endpoint_headers: dict[HeaderNameText, HeaderValueText] | None = Field(
        default=None, max_length=MAX_HEADERS)
    endpoint_timeout_ms: int = Field(default=5000, ge=1000, le=180000)
    tool_call_output_timeout_ms: int = Field(default=5000, ge=1000, le=180000)
    phone_number: str | None = None
    dtmf: ShortText | None = None
    dynamic_dtmf: bool = False
    post_transfer_message: MessageText | None = None
    use_agent_phone_number: bool = True
    detect_voicemail: bool = False
    keep_listening: bool | None = None
    on_transfer_no_answer: Literal["return_to_assistant", "keep_retrying"] | None = None
    agents_to_transfer_to: list[ShortText] | None = Field(default=None,
                                                          max_length=MAX_REFERENCES)
    require_speech_before_tool_call: bool = False
    speech_before_tool_call: Literal["required", "optional", "suppressed"] | None = None
    respond_after_sec: float | None = Field(default=None, ge=0, le=3600)
    wait_for_speech_before_tool_call: bool = False
    forbid_speech_after_tool_call: bool = False
    forbid_tool_call_after_speech: bool | None = None
    allow_tool_chaining: bool = True
    wait_for_response: bool = False
    uninterruptible: bool | None = None
    can_run_during_user_speech: bool | None = None
    context: PromptText | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_tool_name(value)

    @field_validator("phone_number")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else check_e164(value)

    @field_validator("dtmf")
    @classmethod
    def _dtmf(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9*#wW]+", value):
            raise ValueError("dtmf may contain only 0-9, *, # and w (pause)")
        return value

    @model_validator(mode="after")
    def _size(self) -> ToolSpec:
        check_document_size(self)
        return self

    def flat_parameters(self) -> list[ToolParameter]:
        """The parameters in flat-list form ([] for the JSON Schema form)."""
        return self.parameters if isinstance(self.parameters, list) else []

    def param_location(self, name: str) -> Location | None:
        """Where a webhook parameter goes (inline location, or ``parameter_locations``)."""
        for p in self.flat_parameters():
            if p.name == name:
                return p.location
        return (self.parameter_locations or {}).get(name)

    def json_schema(self) -> dict[str, Any]:
        """The function-parameters JSON Schema the LLM sees."""
        if isinstance(self.parameters, dict):
            return dict(self.parameters)
        props: dict[str, Any] = {}
        required: list[str] = []
        for p in self.parameters:
            props[p.name] = _param_schema(p)
            if p.is_required:
                required.append(p.name)
        return {"type": "object", "properties": props, "required": required,
                "additionalProperties": False}


def _param_schema(p: ToolParameter) -> dict[str, Any]:
    if p.type == "enum":
        return {"type": "string", "enum": list(p.enum_values or []), "description": p.description}
    if p.type == "array":
        return {"type": "array", "items": {"type": p.item_type or "string"},
                "description": p.description}
    return {"type": p.type, "description": p.description}


def tool_rule_errors(spec: ToolSpec, explicit: set[str]) -> dict[str, str]:
    """Type-specific rules from the seed docs. ``explicit`` = fields the caller sent."""
    errors: dict[str, str] = {}
    errors.update(_parameter_errors(spec))
    if spec.type == "custom_webhook":
        errors.update(_webhook_errors(spec))
    elif any(_has_location(spec, p) for p in _param_names(spec)) or spec.parameter_locations:
        errors["parameters"] = "location is only allowed for custom_webhook tools"
    if spec.type == "custom_context" and not (spec.context or "").strip():
        errors["context"] = "required for custom_context tools"
    if spec.type == "built_in_transfer_to_agent" and not spec.agents_to_transfer_to:
        errors["agents_to_transfer_to"] = "required for built_in_transfer_to_agent tools"
    flag_rules = {
        "wait_for_speech_before_tool_call": _SPEECH_WAIT_TYPES,
        "forbid_speech_after_tool_call": _CUSTOM_TYPES,
        "use_agent_phone_number": {"built_in_transfer_to_phone_number"},
        "detect_voicemail": {"built_in_transfer_to_phone_number"},
        "agents_to_transfer_to": {"built_in_transfer_to_agent"},
        "context": {"custom_context"},
        "endpoint_url": {"custom_webhook"},
        "endpoint_method": {"custom_webhook"},
    }
    for field, types in flag_rules.items():
        if field in explicit and getattr(spec, field) not in (None, False, [], "") \
                and spec.type not in types:
            if field == "use_agent_phone_number" and getattr(spec, field) is True:
                continue  # the documented default; harmless on any type
            errors.setdefault(field, f"only available for {', '.join(sorted(types))} tools")
    if spec.detect_voicemail and not spec.use_agent_phone_number:
        errors["detect_voicemail"] = "requires use_agent_phone_number to be true"
    if spec.wait_for_response and not (
        spec.type == "custom_websocket" and spec.execution_mode == "async"
    ):
        errors["wait_for_response"] = "only available for async custom_websocket tools"
    return errors


def _param_names(spec: ToolSpec) -> list[str]:
    if isinstance(spec.parameters, dict):
        return list((spec.parameters.get("properties") or {}).keys())
    return [p.name for p in spec.parameters]


def _has_location(spec: ToolSpec, name: str) -> bool:
    return spec.param_location(name) is not None


def _parameter_errors(spec: ToolSpec) -> dict[str, str]:
    if isinstance(spec.parameters, dict):
        return _schema_errors(spec.parameters)
    errors: dict[str, str] = {}
    seen: set[str] = set()
    for i, p in enumerate(spec.parameters):
        key = f"parameters.{i}"
        if p.name in seen:
            errors[f"{key}.name"] = f"duplicate parameter name {p.name!r}"
        seen.add(p.name)
        if p.name in RESERVED_PARAMETER_NAMES:
            errors[f"{key}.name"] = f"{p.name!r} is reserved"
        if p.type == "array" and p.item_type is None:
            errors[f"{key}.item_type"] = "item_type is required for array parameters"
        if p.type == "enum" and not p.enum_values:
            errors[f"{key}.enum_values"] = "enum_values is required for enum parameters"
    return errors


def _schema_errors(schema: dict[str, Any]) -> dict[str, str]:
    if schema.get("type") != "object" or not isinstance(schema.get("properties", {}), dict):
        return {"parameters": "a JSON Schema must be an object with 'properties'"}
    if len(schema.get("properties", {})) > MAX_TOOL_PARAMETERS:
        return {"parameters": f"at most {MAX_TOOL_PARAMETERS} parameters"}
    reserved = RESERVED_PARAMETER_NAMES & set(schema.get("properties", {}))
    if reserved:
        return {"parameters": f"reserved parameter names: {', '.join(sorted(reserved))}"}
    if _depth(schema) > _MAX_SCHEMA_DEPTH:
        return {"parameters": f"at most {_MAX_SCHEMA_DEPTH} levels of nesting"}
    missing = set(schema.get("required") or []) - set(schema.get("properties", {}))
    if missing:
        return {"parameters": f"required names not in properties: {', '.join(sorted(missing))}"}
    return {}


def _depth(node: Any) -> int:
    if not isinstance(node, dict):
        return 0
    children = list((node.get("properties") or {}).values())
    if isinstance(node.get("items"), dict):
        children.append(node["items"])
    return 1 + max((_depth(c) for c in children), default=0)


def _webhook_errors(spec: ToolSpec) -> dict[str, str]:
    errors: dict[str, str] = {}
    if spec.endpoint_method is None:
        errors["endpoint_method"] = "required for custom_webhook tools"
    if not spec.endpoint_url:
        errors["endpoint_url"] = "required for custom_webhook tools"
        return errors
    parts = urlsplit(spec.endpoint_url.replace("{", "").replace("}", ""))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors["endpoint_url"] = "must be an absolute http(s) URL"
    names = _param_names(spec)
    required = _required_names(spec)
    for i, name in enumerate(names):
        loc = spec.param_location(name)
        key = f"parameters.{i}.location"
        if spec.endpoint_method == "POST" and loc is None:
            errors[key] = "location is required for every parameter of a POST webhook"
        if spec.endpoint_method == "GET" and loc == "request_body":
            errors[key] = "GET webhooks cannot use request_body"
        if loc == "url_path":
            if name not in required:
                errors[key] = "url_path parameters must be required"
            elif "{" + name + "}" not in spec.endpoint_url:
                errors[key] = f"endpoint_url has no {{{name}}} placeholder"
    for placeholder in _PLACEHOLDER.findall(spec.endpoint_url):
        if placeholder not in names or spec.param_location(placeholder) != "url_path":
            errors["endpoint_url"] = f"placeholder {{{placeholder}}} needs a url_path parameter"
    return errors


def _required_names(spec: ToolSpec) -> set[str]:
    if isinstance(spec.parameters, dict):
        return set(spec.parameters.get("required") or [])
    return {p.name for p in spec.parameters if p.is_required}


def with_default_locations(spec: ToolSpec) -> ToolSpec:
    """GET webhooks default every parameter to ``query_string``, stored inline."""
    if spec.type != "custom_webhook" or spec.endpoint_method != "GET":
        return spec
    if isinstance(spec.parameters, dict):
        locs = dict(spec.parameter_locations or {})
        for name in _param_names(spec):
            locs.setdefault(name, "query_string")
        return spec.model_copy(update={"parameter_locations": locs})
    params = [p if p.location else p.model_copy(update={"location": "query_string"})
              for p in spec.parameters]
    return spec.model_copy(update={"parameters": params})


def validated(spec: ToolSpec, explicit: Set[str] | None = None) -> ToolSpec:
    """``spec`` after the type-specific rules, with GET webhooks' default locations filled.

    ``explicit`` names the fields the caller set (default: those given when ``spec`` was
    built): a flag that only some types allow is refused only when it was set on purpose.
    """
    given = spec.model_fields_set if explicit is None else explicit
    errors = tool_rule_errors(spec, set(given))
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)
    return with_default_locations(spec)


@dataclass(frozen=True)
class Tool:
    """A stored tool: identity, project and definition."""

    id: str
    project: Ref
    spec: ToolSpec

    @property
    def name(self) -> str:
        return self.spec.name
