"""HTTP calls to customers' servers: tool webhooks and configuration endpoints.

Every call: the SSRF guard (``url_safety``: the URL is validated, and the connection goes
to the address that was vetted at connect time, never to a second DNS answer), a hard
timeout, a capped response body, and header values kept out of logs and records (they
often carry credentials).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from openline.services.url_safety import (
    AddressPolicy,
    UnsafeUrl,
    pinned_client,
    policy_for,
    validate_url,
)
from openline.voice.tools import RuntimeTool, WebhookResult

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 256 * 1024


def redact(headers: dict[str, str] | None) -> dict[str, str] | None:
    """Header names kept, values hidden."""
    return None if headers is None else {k: "***" for k in headers}


async def _read_capped(response: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data.extend(chunk)
        if len(data) > MAX_RESPONSE_BYTES:
            raise ValueError(f"response larger than {MAX_RESPONSE_BYTES} bytes")
    return bytes(data)


@dataclass
class CallContext:
    """Facts about the conversation that webhooks receive alongside the arguments."""

    conversation_id: str
    call_info: dict[str, Any] | None = None


class HttpWebhookCaller:
    """Runs ``custom_webhook`` tools for one conversation (the engine's ``WebhookCaller``).

    ``client`` should be a ``url_safety.SafeAsyncClient``; a plain client is replaced by a
    pinned one per call. ``policy`` overrides what ``allow_private`` stands for."""

    def __init__(self, client: httpx.AsyncClient, context: CallContext, *,
                 allow_private: bool, policy: AddressPolicy | None = None) -> None:
        self.client, self.context, self.allow_private = client, context, allow_private
        self.policy = policy_for(allow_private, policy)

    async def call(self, tool: RuntimeTool, arguments: dict[str, Any]) -> WebhookResult:
        spec = tool.config
        method = str(spec.get("endpoint_method") or "POST")
        url, query, body = self._request_parts(tool, arguments, method)
        headers = dict(spec.get("endpoint_headers") or {})
        result = WebhookResult(method, url, datetime.now(UTC), query or None,
                               body if method == "POST" else None, redact(headers))
        try:
            validate_url(url, policy=self.policy)
            request = self.client.build_request(
                method, url, params=query or None, headers=headers,
                json=body if method == "POST" else None, timeout=tool.timeout_ms / 1000)
            async with pinned_client(self.client, self.policy) as client:
                response = await client.send(request, stream=True)
                try:
                    raw = await _read_capped(response)
                finally:
                    await response.aclose()
        except httpx.TimeoutException:
            result.timed_out, result.error = True, f"no reply within {tool.timeout_ms} ms"
            return result
        except (UnsafeUrl, httpx.HTTPError, ValueError) as exc:
            result.error = f"request failed: {exc}"
            return result
        result.status_code = response.status_code
        try:
            result.body = json.loads(raw) if raw.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            result.body = raw[:500].decode("utf-8", errors="replace")
            result.error = ("the endpoint replied with non-JSON content "
                            f"(HTTP {response.status_code})")
        if response.status_code >= 400 and result.error is None:
            result.error = f"the endpoint replied HTTP {response.status_code}"
        return result

    def _request_parts(self, tool: RuntimeTool, args: dict[str, Any], method: str
                       ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        spec = tool.config
        url = str(spec.get("endpoint_url") or "")
        query: dict[str, Any] = {}
        body: dict[str, Any] = {}
        for name, value in args.items():
            where = _location(spec, name, method)
            if where == "url_path":
                url = url.replace("{" + name + "}", quote(str(value), safe=""))
            elif where == "query_string":
                query[name] = json.dumps(value) if isinstance(value, dict | list) else value
            else:
                body[name] = value
        if method == "GET":
            query.setdefault("conversation_id", self.context.conversation_id)
        else:
            body.setdefault("call_info", self.context.call_info)
        return url, query, body


def _location(spec: dict[str, Any], name: str, method: str) -> str:
    params = spec.get("parameters")
    for p in params if isinstance(params, list) else []:
        if p.get("name") == name and p.get("location"):
            return str(p["location"])
    locations = spec.get("parameter_locations") or {}
    return str(locations.get(name) or ("query_string" if method == "GET" else "request_body"))


class ConfigEndpointFailed(Exception):
    """The configuration endpoint failed; ``ended_by`` says how the conversation ends."""

    def __init__(self, ended_by: str, message: str) -> None:
        super().__init__(message)
        self.ended_by = ended_by


async def fetch_configuration(client: httpx.AsyncClient, endpoint: dict[str, Any],
                              payload: dict[str, Any], *, allow_private: bool,
                              policy: AddressPolicy | None = None) -> dict[str, Any]:
    """POST the conversation's facts; the reply's keys override the agent (``{}``: none)."""
    url = str(endpoint["url"])
    timeout = int(endpoint.get("timeout_ms") or 3000) / 1000
    rules = policy_for(allow_private, policy)
    try:
        validate_url(url, policy=rules)
        request = client.build_request("POST", url, json=payload, timeout=timeout,
                                       headers=dict(endpoint.get("headers") or {}))
        async with pinned_client(client, rules) as safe:
            response = await safe.send(request)
    except httpx.TimeoutException as exc:
        raise ConfigEndpointFailed("configuration_endpoint_timed_out",
                                   f"no reply within {timeout * 1000:.0f} ms") from exc
    except (UnsafeUrl, httpx.HTTPError) as exc:
        raise ConfigEndpointFailed("configuration_endpoint_error", str(exc)) from exc
    if response.status_code >= 400:
        raise ConfigEndpointFailed("configuration_endpoint_error",
                                   f"HTTP {response.status_code}")
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise ConfigEndpointFailed("configuration_endpoint_invalid_response", "reply too large")
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigEndpointFailed("configuration_endpoint_invalid_response",
                                   "the reply is not JSON") from exc
    if not isinstance(data, dict):
        raise ConfigEndpointFailed("configuration_endpoint_invalid_response",
                                   "the reply must be a JSON object")
    return data
