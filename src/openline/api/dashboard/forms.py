"""HTML forms for the API's configuration models, and the request bodies they post.

A form carries every field of a model (``AgentSpec``, ``ToolSpec``, ...), shaped by the
field's type: a checkbox, a choice, a number, a line of text, one entry per line, or a
JSON document. What is posted becomes the same JSON body the REST API takes, and goes
through the same translation and validation (``api.phonic.schemas``) to the same
services, so the API's ``param_errors`` can be shown next to their fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

#: long texts get a text area
_LONG_TEXT = {"system_prompt", "welcome_message", "no_input_poke_text",
              "listen_only_inbound_message", "description", "prompt", "context"}


@dataclass(frozen=True)
class Field:
    """One form control."""

    name: str
    kind: str  # bool | choice | number | text | textarea | lines | json
    optional: bool
    choices: tuple[str, ...] = ()
    help: str = ""
    #: an empty control means ``null`` (the field's default is ``None``)
    empty_is_null: bool = False


def _strip(annotation: Any) -> tuple[Any, bool]:
    """The type without ``Annotated`` and ``None`` (and whether ``None`` was allowed)."""
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(get_args(annotation))
            if len(args) != 1:
                return annotation, optional
            annotation = args[0]
        else:
            return annotation, optional


def _field(name: str, info: FieldInfo) -> Field:
    return dataclasses.replace(_control(name, info), empty_is_null=info.default is None)


def _control(name: str, info: FieldInfo) -> Field:
    annotation, optional = _strip(info.annotation)
    optional = optional or info.default is None
    origin = get_origin(annotation)
    help_text = info.description or ""
    if annotation is bool and optional:  # three states: unset, true, false
        return Field(name, "choice", True, ("true", "false"), help_text)
    if annotation is bool:
        return Field(name, "bool", False, help=help_text)
    if origin is Literal:
        return Field(name, "choice", optional, tuple(str(a) for a in get_args(annotation)),
                     help_text)
    if annotation in (int, float):
        return Field(name, "number", optional, help=help_text)
    if annotation is str:
        return Field(name, "textarea" if name in _LONG_TEXT else "text", optional,
                     help=help_text)
    if origin is list:
        item, _ = _strip(get_args(annotation)[0])
        if item is str or get_origin(item) is Literal:
            return Field(name, "lines", optional, help=help_text or "one per line")
    return Field(name, "json", optional, help=help_text or "JSON")


def fields_of(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[Field]:
    """The form controls of every field of ``model``, in the model's order."""
    return [_field(name, info) for name, info in model.model_fields.items() if name not in skip]


def defaults_of(model: type[BaseModel]) -> dict[str, Any]:
    """The documented default of every optional field (what a new form starts with)."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not info.is_required():
            value = info.get_default(call_default_factory=True)
            out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return out


def body_from(form: Mapping[str, str], fields: list[Field]) -> tuple[dict[str, Any],
                                                                     dict[str, str]]:
    """The JSON body a form stands for, and the fields whose JSON could not be read."""
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        raw = form.get(f.name)
        if f.kind == "bool":
            body[f.name] = raw is not None
            continue
        if raw is None:
            continue
        value = raw.strip() if f.kind != "textarea" else raw.replace("\r\n", "\n")
        if f.kind == "lines":
            body[f.name] = [line.strip() for line in value.splitlines() if line.strip()]
        elif f.kind == "json":
            if not value:
                if f.optional:
                    body[f.name] = None
                continue
            try:
                body[f.name] = json.loads(value)
            except ValueError as exc:
                errors[f.name] = f"not valid JSON: {exc}"
        elif value == "" and (f.empty_is_null or (f.optional and f.kind != "textarea")):
            body[f.name] = None
        else:
            # Numbers go as typed: the model converts "0.5" and refuses "abc" with the
            # API's own message.
            body[f.name] = value
    return body, errors


def values_from(data: Mapping[str, Any], fields: list[Field]) -> dict[str, Any]:
    """What each control shows for a stored object's JSON (``data``)."""
    out: dict[str, Any] = {}
    for f in fields:
        value = data.get(f.name)
        if f.kind == "bool":
            out[f.name] = bool(value)
        elif f.kind == "lines":
            out[f.name] = "\n".join(str(v) for v in value or [])
        elif f.kind == "json":
            out[f.name] = "" if value is None else json.dumps(value, indent=2)
        elif isinstance(value, bool):
            out[f.name] = json.dumps(value)
        else:
            out[f.name] = "" if value is None else str(value)
    return out


def posted_values(form: Mapping[str, str], fields: list[Field]) -> dict[str, Any]:
    """What the controls show again after a refused submit: what was typed."""
    return {f.name: (f.name in form) if f.kind == "bool" else form.get(f.name, "")
            for f in fields}


def field_errors(param_errors: Mapping[str, str], fields: list[Field]
                 ) -> tuple[dict[str, str], list[str]]:
    """The API's ``param_errors`` by form field (``tasks.0.name`` shows at ``tasks``), and
    the messages that belong to no field."""
    names = {f.name for f in fields}
    by_field: dict[str, str] = {}
    other: list[str] = []
    for path, message in param_errors.items():
        head = path.split(".", 1)[0]
        if head in names:
            text = message if path == head else f"{path}: {message}"
            by_field[head] = f"{by_field[head]}; {text}" if head in by_field else text
        else:
            other.append(f"{path}: {message}")
    return by_field, other


def json_diff(old: Mapping[str, Any], new: Mapping[str, Any], old_name: str,
              new_name: str) -> list[str]:
    """A unified diff of two configurations as sorted, indented JSON."""
    def lines(value: Mapping[str, Any]) -> list[str]:
        return json.dumps(value, indent=2, sort_keys=True).splitlines()

    return list(difflib.unified_diff(lines(old), lines(new), old_name, new_name, lineterm=""))
