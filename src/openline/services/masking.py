"""Secrets are never returned in full: how stored header values are shown, and kept.

Header values of tools (``endpoint_headers``) and of configuration endpoints (agents and
phone numbers) are shown masked: the first four characters and ``...`` when the value has
at least 16 characters, ``****`` when it is shorter (the empty string stays empty). A client
that reads a resource and sends it back unchanged sends the masked values back: an update
whose value for a header is exactly the mask of the stored value keeps the stored secret.
"""

from __future__ import annotations

from collections.abc import Mapping

from openline.domain.agent import AgentSpec, ConfigurationEndpoint

SHOWN = 4
MIN_SHOWN_LENGTH = 16
HIDDEN = "****"


def mask(value: str) -> str:
    """How a secret value is shown (see the module docstring)."""
    if not value:
        return value
    if len(value) >= MIN_SHOWN_LENGTH:
        return value[:SHOWN] + "..."
    return HIDDEN


def mask_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """Header names as they are, every value masked."""
    return None if headers is None else {name: mask(v) for name, v in headers.items()}


def keep_masked(sent: Mapping[str, str] | None,
                stored: Mapping[str, str] | None) -> dict[str, str] | None:
    """The headers as sent, except that a value equal to the mask of the stored value of
    the same header means "unchanged": the stored secret is kept."""
    if sent is None:
        return None
    stored = stored or {}
    return {name: stored[name] if name in stored and value == mask(stored[name]) else value
            for name, value in sent.items()}


def keep_endpoint_secrets(sent: ConfigurationEndpoint | None,
                          stored: ConfigurationEndpoint | None) -> ConfigurationEndpoint | None:
    """``sent`` with masked header values replaced by the stored secrets."""
    if sent is None or stored is None or not stored.headers:
        return sent
    headers = keep_masked(sent.headers, stored.headers) or {}
    return sent if headers == sent.headers else sent.model_copy(update={"headers": headers})


def keep_agent_secrets(spec: AgentSpec, stored: AgentSpec) -> AgentSpec:
    """An agent configuration to store, its masked endpoint headers restored from ``stored``."""
    endpoint = keep_endpoint_secrets(spec.configuration_endpoint, stored.configuration_endpoint)
    if endpoint is spec.configuration_endpoint:
        return spec
    return spec.model_copy(update={"configuration_endpoint": endpoint})
