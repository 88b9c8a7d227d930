"""Shared validation rules and the bridge from Pydantic errors to ``param_errors``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from openline.domain.errors import ValidationFailed
from openline.domain.limits import MAX_NAME_CHARS, MAX_TOOL_NAME_CHARS

RESOURCE_NAME = re.compile(r"^[a-z0-9-]+$")
TOOL_NAME = re.compile(r"^[a-z0-9_]+$")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")

#: ISO 639-1 codes accepted for ``languages`` (Phonic's list, spec section 8).
LANGUAGE_CODES = frozenset({
    "ar", "az", "bg", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr", "gu",
    "he", "hi", "hu", "id", "it", "ja", "ka", "km", "kn", "ko", "lt", "lv", "ml", "mr", "ms",
    "ne", "nl", "no", "pa", "pl", "pt", "ro", "ru", "si", "sk", "sq", "sv", "sw", "ta", "te",
    "th", "tr", "uk", "ur", "vi", "yue", "zh",
})
AUDIO_FORMATS = ("pcm_44100", "pcm_24000", "pcm_16000", "pcm_8000", "mulaw_8000")
BACKGROUND_NOISES = ("office", "call-center", "coffee-shop")

M = TypeVar("M", bound=BaseModel)


def check_resource_name(value: str, what: str = "name") -> str:
    """Agent, project and slug names: lowercase letters, digits and hyphens."""
    if not value or not RESOURCE_NAME.fullmatch(value):
        raise ValueError(f"{what} can only contain lowercase letters, numbers and hyphens")
    if len(value) > MAX_NAME_CHARS:
        raise ValueError(f"{what} is at most {MAX_NAME_CHARS} characters")
    return value


def check_tool_name(value: str) -> str:
    """Tool names are snake_case."""
    if not value or not TOOL_NAME.fullmatch(value):
        raise ValueError("name must be snake_case (lowercase letters, numbers and underscores)")
    if len(value) > MAX_TOOL_NAME_CHARS:
        raise ValueError(f"name is at most {MAX_TOOL_NAME_CHARS} characters")
    return value


def check_e164(value: str) -> str:
    """Phone numbers are E.164: ``+`` then up to 15 digits, no leading zero."""
    if not E164.fullmatch(value):
        raise ValueError(f"{value!r} is not an E.164 phone number (e.g. +15551234567)")
    return value


def check_language(value: str) -> str:
    """An ISO 639-1 code from Phonic's supported list."""
    if value not in LANGUAGE_CODES:
        raise ValueError(f"{value!r} is not a supported ISO 639-1 language code")
    return value


def check_timezone(value: str) -> str:
    """An IANA time zone name such as ``America/Los_Angeles``."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: name too long,
        # a directory such as "America", or a character the file system refuses
        raise ValueError(f"{value!r} is not a known IANA time zone") from exc
    return value


#: How Pydantic names a member of a union in an error's location (``list[ToolParameter]``).
_UNION_MEMBER = re.compile(r"^[\w-]+\[.*\]$")


def param_errors_from(exc: ValidationError) -> dict[str, str]:
    """Flatten a Pydantic error into ``{"field.path": "message"}``, first message per field.

    A union (a tool's ``parameters``: a list or a JSON Schema) reports every member; the
    members the input's type did not even match are left out, and the member's name is
    dropped from the path (``parameters.0.name``, not ``parameters.list[...].0.name``)."""
    found: list[tuple[str, str, bool]] = []  # (path, message, only "not this type")
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        member = next((i for i, p in enumerate(loc) if _UNION_MEMBER.match(p)), None)
        wrong_member = member is not None and member == len(loc) - 1 \
            and str(err["type"]).endswith("_type")
        if member is not None:
            del loc[member]
        msg = str(err["msg"]).removeprefix("Value error, ")
        found.append((".".join(loc) or "body", msg, wrong_member))
    errors: dict[str, str] = {}
    for path, msg, wrong_member in found:
        other_matched = any((p == path and not w) or p.startswith(path + ".")
                            for p, _, w in found)
        if not (wrong_member and other_matched):  # else another member's errors say more
            errors.setdefault(path, msg)
    return errors


def parse(model: type[M], data: Mapping[str, Any], message: str = "Invalid parameters") -> M:
    """Validate ``data`` into ``model`` or raise ``ValidationFailed`` with ``param_errors``."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        errors = param_errors_from(exc)
        raise ValidationFailed(first_error_message(errors, message), errors) from exc


def first_error_message(errors: Mapping[str, str], message: str = "Invalid parameters") -> str:
    """``"Invalid parameters: field: message"`` for the first error (``message`` if none)."""
    first = next(iter(errors.items()), None)
    return f"{message}: {first[0]}: {first[1]}" if first else message


def validate_partial(model: type[M], data: Mapping[str, Any],
                     placeholders: Mapping[str, Any]) -> tuple[M | None, dict[str, str]]:
    """Validate only the fields present in ``data`` against ``model``'s per-field rules.

    Required fields missing from ``data`` are filled from ``placeholders`` (valid values)
    so that only the given fields can fail. Cross-field rules are not checked here: they
    apply to the merged result. Returns the model (``None`` on errors) and the errors.
    """
    try:
        return model.model_validate({**placeholders, **data}), {}
    except ValidationError as exc:
        return None, param_errors_from(exc)
