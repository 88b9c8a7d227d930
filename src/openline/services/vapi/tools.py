"""Vapi tools: stored as sent, and mapped onto Openline tools where one means the same.

| Vapi tool | Openline |
|---|---|
| ``apiRequest`` (GET/POST) | ``custom_webhook``: url, method, the ``body`` schema as parameters |
| ``transferCall`` to a number | ``built_in_transfer_to_phone_number`` (first number destination) |
| ``transferCall`` to assistants | ``built_in_transfer_to_agent`` (destinations by assistant name) |
| ``endCall`` | the agent's built-in ``natural_conversation_ending`` (see ``assistant_map``) |
| ``function`` and the rest | stored only; function tools reach the assistant's server URL |

The Openline tool a Vapi tool maps onto is its ``link_id``; editing or deleting the Vapi tool
edits or deletes it, so an assistant listing the tool in ``model.toolIds`` gets it in calls.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from openline.domain.errors import Conflict, NotFound, ValidationFailed
from openline.domain.tool import ToolSpec
from openline.domain.tool_changes import ToolChanges
from openline.domain.validation import first_error_message, parse
from openline.services import lookup
from openline.services.commands import CreateTool, Key, UpdateTool
from openline.services.principal import Principal
from openline.services.tools import ToolService
from openline.services.vapi.call_view import iso
from openline.services.vapi.docs import Doc, ListQuery, VapiDocs
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables_vapi import VapiResource

KIND = "tool"
#: Tool types Vapi's SDKs create (3.0.0, and the legacy ones of §4.9), plus response-only ones.
TOOL_TYPES = frozenset({
    "apiRequest", "bash", "code", "computer", "dtmf", "endCall", "function",
    "gohighlevel.calendar.availability.check", "gohighlevel.calendar.event.create",
    "gohighlevel.contact.create", "gohighlevel.contact.get", "google.calendar.availability.check",
    "google.calendar.event.create", "google.sheets.row.append", "handoff", "mcp", "query",
    "sipRequest", "slack.message.send", "sms", "textEditor", "transferCall", "voicemail",
    "output", "make", "ghl", "knowledgeBase",
})
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOOL_NAME_STRIP = re.compile(r"[^a-z0-9]+")


def check_tool(body: Mapping[str, Any]) -> None:
    """400 for a tool body Vapi refuses (unknown type, missing required keys)."""
    kind = body.get("type")
    errors: dict[str, str] = {}
    if kind not in TOOL_TYPES:
        errors["type"] = "type must be one of " + ", ".join(sorted(TOOL_TYPES))
    function = body.get("function")
    if function is not None:
        if not isinstance(function, dict):
            errors["function"] = "function must be an object"
        elif function.get("name") is not None and not (
                isinstance(function["name"], str) and _FUNCTION_NAME.fullmatch(function["name"])):
            errors["function.name"] = "function.name must be a-z, A-Z, 0-9, _ or -, at most 64"
    if kind == "apiRequest":
        if body.get("method") not in ("POST", "GET", "PUT", "PATCH", "DELETE"):
            errors["method"] = "method must be one of POST, GET, PUT, PATCH, DELETE"
        if not isinstance(body.get("url"), str) or not body["url"]:
            errors["url"] = "url must be a URL string"
    if kind in ("make", "ghl") and not isinstance(body.get("metadata"), dict):
        errors["metadata"] = "metadata is required for make and ghl tools"
    if kind == "code" and not isinstance(body.get("code"), str):
        errors["code"] = "code is required for code tools"
    destinations = body.get("destinations")
    if destinations is not None and not (isinstance(destinations, list) and all(
            isinstance(d, dict) and d.get("type") in ("number", "sip", "assistant", "squad",
                                                      "dynamic") for d in destinations)):
        errors["destinations"] = "destinations must be objects of type number, sip or assistant"
    for key in ("messages",):
        if body.get(key) is not None and not isinstance(body[key], list):
            errors[key] = f"{key} must be a list"
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)


def _tool_name(body: Mapping[str, Any], fallback: str) -> str:
    function = body.get("function") if isinstance(body.get("function"), dict) else {}
    raw = str(body.get("name") or (function or {}).get("name") or "")
    name = _TOOL_NAME_STRIP.sub("_", raw.lower()).strip("_")
    return (name or fallback)[:55]


def openline_spec(body: Mapping[str, Any], agent_names: Mapping[str, str],
                  name: str) -> ToolSpec | None:
    """The Openline tool a Vapi tool maps onto (``None``: it maps onto none).
    ``agent_names``: a Vapi assistant name (or agent name) -> the agent's name."""
    kind = body.get("type")
    description = str(body.get("description") or _describe(body) or f"The {kind} tool")
    if kind == "apiRequest" and body.get("method") in ("GET", "POST"):
        method = str(body["method"])
        schema = body.get("body") if isinstance(body.get("body"), dict) else None
        params: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        if schema and isinstance(schema.get("properties"), dict):
            params = {"type": "object", "properties": schema["properties"],
                      "required": list(schema.get("required") or [])}
        location = "request_body" if method == "POST" else "query_string"
        timeout = body.get("timeoutSeconds")
        fields: dict[str, Any] = {
            "name": name, "description": description, "type": "custom_webhook",
            "execution_mode": "sync", "endpoint_method": method,
            "endpoint_url": body["url"], "parameters": params,
            "parameter_locations": {p: location for p in params["properties"]}}
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            fields["endpoint_timeout_ms"] = int(min(max(timeout, 1), 180) * 1000)
        return parse(ToolSpec, fields)
    if kind == "transferCall":
        return _transfer_spec(body, agent_names, name, description)
    return None


def _describe(body: Mapping[str, Any]) -> str | None:
    function = body.get("function")
    if isinstance(function, dict) and isinstance(function.get("description"), str):
        return function["description"] or None
    return None


def _transfer_spec(body: Mapping[str, Any], agent_names: Mapping[str, str], name: str,
                   description: str) -> ToolSpec | None:
    destinations = [d for d in body.get("destinations") or [] if isinstance(d, dict)]
    numbers = [d for d in destinations if d.get("type") == "number"]
    if numbers:
        fields: dict[str, Any] = {
            "name": name, "description": description, "execution_mode": "sync",
            "type": "built_in_transfer_to_phone_number", "phone_number": numbers[0].get("number")}
        message = numbers[0].get("message")
        if isinstance(message, str) and message:
            fields["post_transfer_message"] = message
        return parse(ToolSpec, fields)
    assistants = [d.get("assistantName") for d in destinations if d.get("type") == "assistant"]
    if assistants:
        missing = [a for a in assistants if a not in agent_names]
        if missing:
            raise ValidationFailed(f"Unknown assistant: {missing[0]}",
                                   {"destinations": f"no assistant named {missing[0]}"})
        return parse(ToolSpec, {
            "name": name, "description": description, "execution_mode": "sync",
            "type": "built_in_transfer_to_agent",
            "agents_to_transfer_to": [agent_names[str(a)] for a in assistants]})
    return None


def tool_json(d: Doc, org_id: str) -> dict[str, Any]:
    out = {k: v for k, v in d.doc.items() if not k.startswith("_openline")}
    out.update(id=d.id, orgId=org_id, createdAt=iso(d.created_at), updatedAt=iso(d.updated_at))
    return out


class VapiToolService:
    def __init__(self, db: Database, docs: VapiDocs, tools: ToolService) -> None:
        self.db, self.docs, self.tools = db, docs, tools

    async def agent_names(self, who: Principal) -> dict[str, str]:
        """Vapi assistant names and agent names of the default project -> agent names."""
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, None)
            agents = (await s.execute(select(t.Agent.id, t.Agent.name)
                                      .where(t.Agent.project_id == proj.id))).all()
            docs = (await s.execute(select(VapiResource.id, VapiResource.doc).where(
                VapiResource.id.in_([a.id for a in agents]),
                VapiResource.kind == "assistant"))).all()
        by_id = {a.id: a.name for a in agents}
        out = {a.name: a.name for a in agents}
        for row in docs:
            vapi_name = (row.doc or {}).get("name")
            if isinstance(vapi_name, str) and row.id in by_id:
                out.setdefault(vapi_name, by_id[row.id])
        return out

    async def _link(self, who: Principal, body: Mapping[str, Any],
                    old_link: str | None) -> str | None:
        """Create, update or delete the Openline tool ``body`` maps onto; its ID."""
        names = await self.agent_names(who) if body.get("type") == "transferCall" else {}
        base = _tool_name(body, f"vapi_{str(body.get('type')).lower()}")
        if old_link is not None:
            try:
                current = await self.tools.get(who, None, old_link)
                base = current.name
            except NotFound:
                old_link = None
        spec = openline_spec(body, names, base)
        if spec is None:
            if old_link is not None:
                await self.tools.delete(who, None, old_link)
            return None
        if old_link is not None:
            changes = ToolChanges.of(spec.model_dump(exclude_unset=False))
            await self.tools.update(who, UpdateTool(Key(old_link), changes))
            return old_link
        for attempt in range(5):
            try:
                return (await self.tools.create(who, CreateTool(spec))).id
            except Conflict as exc:
                if exc.code != "name_taken" or attempt == 4:
                    raise
                spec = spec.model_copy(update={"name": f"{base[:46]}_{uuid.uuid4().hex[:8]}"})
        return None  # unreachable: the loop returns or raises

    async def create(self, who: Principal, body: dict[str, Any]) -> Doc:
        check_tool(body)
        link = await self._link(who, body, None)
        return await self.docs.create(who, KIND, body, link_id=link)

    async def get(self, who: Principal, tool_id: str) -> Doc:
        return await self.docs.get(who, KIND, tool_id)

    async def list_all(self, who: Principal, q: ListQuery) -> list[Doc]:
        return await self.docs.list_all(who, KIND, q)

    async def update(self, who: Principal, tool_id: str, body: dict[str, Any]) -> Doc:
        """PATCH carries ``type`` (the SDK's update union is discriminated): it must be the
        tool's own."""
        current = await self.docs.get(who, KIND, tool_id)
        if "type" in body and body["type"] != current.doc.get("type"):
            raise ValidationFailed("A tool's type cannot be changed",
                                   {"type": f"must be {current.doc.get('type')}"})
        merged = {**current.doc, **body}
        check_tool(merged)
        link = await self._link(who, merged, current.link_id)
        async with self.db.session() as s:
            row = await self.docs.row(s, who, KIND, tool_id)
            if row is None:
                raise NotFound("Tool not found")
            row.doc, row.link_id, row.updated_at = merged, link, t.utcnow()
        return await self.docs.get(who, KIND, tool_id)

    async def delete(self, who: Principal, tool_id: str) -> Doc:
        current = await self.docs.get(who, KIND, tool_id)
        if current.link_id is not None:
            with contextlib.suppress(NotFound):
                await self.tools.delete(who, None, current.link_id)
        return await self.docs.delete(who, KIND, tool_id)
