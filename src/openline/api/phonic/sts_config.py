"""The Phonic ``config`` message -> a dialect-neutral ``StartCall``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openline.domain.errors import ValidationFailed
from openline.domain.limits import external_id_error
from openline.services.call_setup import StartCall
from openline.services.principal import Principal
from openline.services.session_config import overrides_from_config

#: ``config`` keys the agent's own validation does not see, and the types they take
_TYPES: dict[str, type] = {
    "agent": str, "project": str, "external_id": str, "tools": list,
    "input_format": str, "output_format": str, "stream_ahead_of_real_time": bool,
    "template_variables": dict, "configuration_endpoint": dict,
}
_TYPE_NAMES = {str: "a string", list: "a list", bool: "a boolean", dict: "an object"}


def check_types(config: Mapping[str, Any]) -> None:
    """A precise error for each session key of the wrong type (null means unset)."""
    errors = {key: f"must be {_TYPE_NAMES[kind]}" for key, kind in _TYPES.items()
              if config.get(key) is not None and not isinstance(config[key], kind)}
    if errors:
        key, message = next(iter(errors.items()))
        raise ValidationFailed(f"Invalid config: {key}: {message}", errors)


def start_call(who: Principal, config: Mapping[str, Any], origin: str) -> StartCall:
    """Translate one ``config`` message; ``ValidationFailed`` names every bad field."""
    check_types(config)
    problem = external_id_error(config.get("external_id") or "")
    if problem:
        raise ValidationFailed(f"Invalid config: external_id: {problem}",
                               {"external_id": problem})
    tools = config.get("tools")
    return StartCall(
        who, agent=config.get("agent") or None, project=config.get("project") or None,
        overrides=overrides_from_config(config),
        tools=list(tools) if isinstance(tools, list) else None,
        external_id=config.get("external_id"), origin=origin)
