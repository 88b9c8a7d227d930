"""A Vapi assistant as one call runs it: overrides, variables, tools, server, endings.

The agent fields an assistant sets are the assistant mapping's (``assistant_map``); this
module adds what only a running Vapi call needs:

* ``variableValues`` -> the call's ``template_variables`` (``{{name}}`` in prompt and
  greeting);
* ``model.tools`` (``function``, whose ``tool-calls`` go to the tool's server or the
  assistant's; ``endCall``) and the legacy ``model.functions`` (``function-call``) ->
  runtime tools;
* ``server`` (or the legacy ``serverUrl`` + ``serverUrlSecret``) with its credential ->
  where server messages go; ``serverMessages`` / ``clientMessages`` -> which are sent;
* ``assistantOverrides`` merged onto an assistant (``"tools:append"`` included).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from openline.domain.errors import ValidationFailed
from openline.services.vapi.server_messages import (
    ASSISTANT_REQUEST_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    ServerTarget,
)
from openline.voice.tools import RuntimeTool

#: spec section 5.5: what an assistant sends by default
DEFAULT_SERVER_MESSAGES = frozenset({
    "conversation-update", "end-of-call-report", "function-call", "hang", "speech-update",
    "status-update", "tool-calls", "transfer-destination-request",
    "handoff-destination-request", "user-interrupted", "assistant.started"})
DEFAULT_CLIENT_MESSAGES = frozenset({
    "conversation-update", "function-call", "hang", "model-output", "speech-update",
    "status-update", "transfer-update", "transcript", "tool-calls", "user-interrupted",
    "voice-input", "workflow.node.started", "assistant.started"})
#: the final-only transcript subscription (a literal name in ``serverMessages``)
FINAL_TRANSCRIPT = 'transcript[transcriptType="final"]'

def merge_overrides(assistant: Mapping[str, Any], overrides: Mapping[str, Any] | None
                    ) -> dict[str, Any]:
    """``assistantOverrides`` on top of an assistant: keys replace (``model`` merges one
    level), ``variableValues`` merge, ``"tools:append"`` adds to ``model.tools``."""
    out = copy.deepcopy(dict(assistant))
    for key, value in (overrides or {}).items():
        if key == "variableValues" and isinstance(value, dict):
            out["variableValues"] = {**(out.get("variableValues") or {}), **value}
        elif key == "tools:append" and isinstance(value, list):
            model = dict(out.get("model") or {})
            model["tools"] = [*(model.get("tools") or []), *value]
            out["model"] = model
        elif key == "model" and isinstance(value, dict) and isinstance(out.get("model"), dict):
            out["model"] = {**out["model"], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def variable_config(assistant: Mapping[str, Any]) -> dict[str, Any]:
    """``variableValues`` as the call's ``template_variables`` (``{{name}}`` in the prompt,
    the first message and the other texts the agent renders)."""
    values = assistant.get("variableValues")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValidationFailed("variableValues must be an object",
                               {"assistantOverrides.variableValues": "must be an object"})
    return {"template_variables": {str(k): v if isinstance(v, str) else _text(v)
                                   for k, v in values.items()}}


SECRET_KEYS = frozenset({"secret", "serverUrlSecret", "headers", "credentials", "token",
                         "secretKey", "twilioAuthToken", "twilioApiSecret", "password",
                         "clientSecret"})


def public(value: Any) -> Any:
    """A document without its secrets (what is echoed, sent and stored in the clear)."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def _text(value: Any) -> str:
    import json

    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def server_target(assistant: Mapping[str, Any], *, request: bool = False
                  ) -> ServerTarget | None:
    """Where the assistant's server messages go, with their credential.

    ``server.credentialId`` names a webhook credential among the assistant's
    ``credentials`` (by ``id`` or ``name``); the legacy ``serverUrl`` / ``serverUrlSecret``
    and ``server.secret`` are sent as ``X-Vapi-Secret``."""
    server = assistant.get("server")
    if isinstance(server, dict) and isinstance(server.get("url"), str):
        return target_of(server, assistant.get("credentials"), request=request)
    if isinstance(assistant.get("serverUrl"), str):
        return ServerTarget(assistant["serverUrl"], secret=assistant.get("serverUrlSecret"))
    return None


def target_of(server: Mapping[str, Any], credentials: Any = None, *, request: bool = False
              ) -> ServerTarget:
    """A ``Server`` object (spec section 5.4) as a target."""
    timeout = server.get("timeoutSeconds", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
            or not 1 <= timeout <= 300:
        raise ValidationFailed("server.timeoutSeconds must be a number from 1 to 300",
                               {"server.timeoutSeconds": "1-300"})
    if request:
        timeout = min(float(timeout), ASSISTANT_REQUEST_TIMEOUT_S)
    headers = server.get("headers") or {}
    if not isinstance(headers, dict):
        raise ValidationFailed("server.headers must be an object",
                               {"server.headers": "must map names to values"})
    auth = None
    credential_id = server.get("credentialId")
    if credential_id is not None:
        auth = _credential(credential_id, credentials)
    return ServerTarget(str(server["url"]), float(timeout),
                        {str(k): str(v) for k, v in headers.items()},
                        server.get("secret") if isinstance(server.get("secret"), str) else None,
                        auth)


def _credential(credential_id: Any, credentials: Any) -> dict[str, Any]:
    for cred in credentials if isinstance(credentials, list) else []:
        if isinstance(cred, dict) and cred.get("provider") == "webhook" \
                and credential_id in (cred.get("id"), cred.get("name")):
            plan = cred.get("authenticationPlan")
            if isinstance(plan, dict) and plan.get("type") in ("bearer", "hmac"):
                return plan
            raise ValidationFailed(
                "webhook credentials support authenticationPlan types bearer and hmac",
                {"credentials.authenticationPlan.type": "bearer or hmac"})
    raise ValidationFailed(
        f"server.credentialId {credential_id!r} names no webhook credential of the "
        "assistant (give it in the assistant's credentials)",
        {"server.credentialId": "unknown credential"})


def wanted(assistant: Mapping[str, Any], key: str, default: frozenset[str]) -> frozenset[str]:
    value = assistant.get(key)
    return frozenset(v for v in value if isinstance(v, str)) \
        if isinstance(value, list) else default


def runtime_tools(assistant: Mapping[str, Any]) -> tuple[list[RuntimeTool], list[str]]:
    """The assistant's inline tools: function tools the server runs (``tool-calls``, or
    ``function-call`` for the legacy ``model.functions``), and the built-ins they name."""
    model = assistant.get("model") if isinstance(assistant.get("model"), dict) else {}
    assert isinstance(model, dict)
    tools: list[RuntimeTool] = []
    built_ins: list[str] = []
    for i, tool in enumerate(model.get("tools") or []):
        if not isinstance(tool, dict):
            raise ValidationFailed("model.tools items must be objects",
                                   {f"model.tools.{i}": "must be an object"})
        if tool.get("type") == "endCall":
            built_ins.append("natural_conversation_ending")
        elif tool.get("type") == "function":
            tools.append(function_tool(tool.get("function"), tool, f"model.tools.{i}",
                                        assistant.get("credentials")))
        elif tool.get("type") == "transferCall":
            tools.append(transfer_tool(tool, f"model.tools.{i}"))
        else:
            raise ValidationFailed(
                f"model.tools.{i}: inline tools of type {tool.get('type')!r} are not run on "
                "calls; use function, transferCall or endCall",
                {f"model.tools.{i}.type": "unsupported"})
    for i, fn in enumerate(model.get("functions") or []):
        tools.append(function_tool(fn, {"legacy": True}, f"model.functions.{i}"))
    if model.get("toolIds"):
        raise ValidationFailed("model.toolIds are not resolved on inline assistants; "
                               "give the tools inline", {"model.toolIds": "unsupported here"})
    return tools, built_ins


def function_tool(fn: Any, tool: Mapping[str, Any], path: str, credentials: Any = None
                   ) -> RuntimeTool:
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ValidationFailed(f"{path}.function.name is required",
                               {f"{path}.function.name": "required"})
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(params, dict) or params.get("type", "object") != "object":
        raise ValidationFailed(f"{path}.function.parameters must be a JSON Schema object",
                               {f"{path}.function.parameters": "must be an object schema"})
    server = tool.get("server")
    if server is not None and not (isinstance(server, dict) and isinstance(server.get("url"),
                                                                           str)):
        raise ValidationFailed(f"{path}.server.url is required",
                               {f"{path}.server.url": "required"})
    target = target_of(server, credentials) if server is not None else None
    return RuntimeTool(fn["name"], str(fn.get("description") or ""), "webhook",
                       {"type": "object", **params}, None,
                       "async" if tool.get("async") is True else "sync",
                       int((target.timeout_s if target else DEFAULT_TIMEOUT_S) * 1000),
                       config={"vapi_tool": _without_secrets(tool),
                               "vapi_target": target.to_json() if target else None})


def transfer_tool(tool: Mapping[str, Any], path: str) -> RuntimeTool:
    """A ``transferCall`` tool: to its first ``number`` destination, or (with none) to the
    one the server names in its reply to ``transfer-destination-request``."""
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else {}
    name = str((fn or {}).get("name") or "transferCall")
    description = str((fn or {}).get("description") or "Transfer the call to a person")
    destinations = [d for d in tool.get("destinations") or [] if isinstance(d, dict)]
    numbers = [d for d in destinations if d.get("type") == "number" and d.get("number")]
    if destinations and not numbers:
        raise ValidationFailed(f"{path}: inline transferCall destinations must be numbers "
                               "(assistant destinations are squad members)",
                               {f"{path}.destinations": "number destinations only"})
    config = {"vapi_tool": _without_secrets(tool), "vapi_transfer": True}
    if numbers:
        config["phone_number"] = str(numbers[0]["number"])
        return RuntimeTool(name, description, "transfer_phone", id=None,
                           uninterruptible=True, config=config)
    return RuntimeTool(name, description, "webhook", config=config,
                       timeout_ms=int(DEFAULT_TIMEOUT_S * 1000))


def _without_secrets(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The tool as ``toolWithToolCallList`` shows it: its server's URL, not its secrets."""
    out = dict(tool)
    if isinstance(out.get("server"), dict):
        out["server"] = {k: v for k, v in out["server"].items()
                         if k not in ("secret", "headers", "credentialId")}
    return out
