"""Validate and coerce the model's tool-call arguments against the tool's JSON Schema.

Small models often send ``"5"`` for an integer or ``"true"`` for a boolean: those are
coerced. Anything still invalid goes back to the model as an error; the tool is not run.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator


class InvalidArguments(ValueError):
    """The arguments do not match the schema (message is shown to the model)."""


def parse_arguments(raw: str, schema: dict[str, Any]) -> dict[str, Any]:
    """JSON text -> a dict that validates against ``schema`` (coercing where safe)."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"arguments are not valid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise InvalidArguments("arguments must be a JSON object")
    coerced = _coerce(value, schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(coerced), key=lambda e: e.path)
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "arguments"
        raise InvalidArguments(f"{where}: {first.message}")
    assert isinstance(coerced, dict)
    return coerced


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: _coerce(v, props[k]) if k in props else v for k, v in value.items()}
    if kind == "array":
        if isinstance(value, str):
            value = _maybe_json_list(value)
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            return [_coerce(v, schema["items"]) for v in value]
        return value
    if isinstance(value, str):
        return _from_string(value, kind)
    if kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _from_string(value: str, kind: Any) -> Any:
    text = value.strip()
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return value
    if kind == "boolean" and text.lower() in ("true", "false", "yes", "no"):
        return text.lower() in ("true", "yes")
    return value


def _maybe_json_list(text: str) -> Any:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return [p.strip() for p in text.split(",") if p.strip()]
    return parsed
