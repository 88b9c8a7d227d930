"""Which assistant a Vapi call runs, and how: stored (an agent, with its Vapi document) or
inline, ``assistantOverrides`` on top, or chosen by the server (``assistant-request``).

The result is what the call set-up needs: a ``StartCall`` (the agent and per-call
overrides in Openline's vocabulary, via the assistant mapping ``assistant_map``), the
function tools the server runs (``tool-calls``; inline, or stored Vapi tools named in
``model.toolIds`` that have no Openline counterpart), and where server messages go.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from openline.domain.errors import ValidationFailed
from openline.services.call_setup import StartCall
from openline.services.principal import Principal
from openline.services.session_config import overrides_from_config
from openline.services.vapi import assistant_map as amap
from openline.services.vapi import live_assistant as la
from openline.services.vapi.assistants import AssistantService
from openline.services.vapi.docs import VapiDocs
from openline.services.vapi.live_requests import AssistantChoice, ask_for_assistant
from openline.services.vapi.server_messages import ServerMessages, ServerTarget
from openline.services.vapi.squads import SquadService
from openline.voice.tools import RuntimeTool

NO_ASSISTANT = "call-start-error-neither-assistant-nor-server-set"
#: assistant keys that hold where server messages go and their credentials
CREDENTIAL_KEYS = ("server", "credentials", "serverUrl", "serverUrlSecret")


@dataclass
class CallStart:
    """A resolved call: the start command, the tools the server runs, the assistant as
    messages show it, and its server."""

    start: StartCall
    choice: AssistantChoice
    tools: list[RuntimeTool] = field(default_factory=list)
    built_ins: tuple[str, ...] = ()
    server: ServerTarget | None = None


class AssistantResolver:
    """See the module docstring."""

    def __init__(self, assistants: AssistantService, docs: VapiDocs, messages: ServerMessages,
                 org_server: ServerTarget | None, squads: SquadService | None = None) -> None:
        self.assistants, self.docs, self.messages = assistants, docs, messages
        self.org_server, self.squads = org_server, squads

    async def resolve(self, who: Principal, body: dict[str, Any], call: dict[str, Any],
                      formats: dict[str, str], origin: str, ask: ServerTarget | None = None
                      ) -> CallStart:
        """The call's start; raises ``ValidationFailed`` / ``NotFound`` (nothing stored).
        ``ask``: the server an ``assistant-request`` goes to (default: the org's)."""
        choice = await self.choose(who, body, call, ask)
        amap.check_limits(choice.assistant)
        tools, built_ins = la.runtime_tools(choice.assistant) if choice.assistant_id is None \
            else (await self._stored_tools(who, choice.assistant), [])
        names = [tool.name for tool in tools]
        if len(set(names)) != len(names):
            raise ValidationFailed("Tool names must be unique", {"model.tools": "duplicates"})
        config = {**self._config(choice), **formats}
        start = StartCall(who, agent=choice.assistant_id,
                          overrides=overrides_from_config(config), origin=origin,
                          tools=None if choice.assistant_id else list(built_ins))
        server = choice.server or la.server_target(choice.assistant)
        return CallStart(start, choice, tools, tuple(built_ins), server)

    def _config(self, choice: AssistantChoice) -> dict[str, Any]:
        """Openline ``config`` keys: the mapping's agent fields, plus ``variableValues``."""
        assistant = choice.assistant
        model = assistant.get("model") if isinstance(assistant.get("model"), dict) else {}
        skip = {str(i): "" for i in (model or {}).get("toolIds") or []}  # tools: ours
        fields = amap.agent_fields(assistant, skip)
        fields.pop("tools", None)  # tools are the agent's, or given to the call set-up
        return {**fields, **la.variable_config(assistant)}

    async def choose(self, who: Principal, body: dict[str, Any], call: dict[str, Any],
                     ask: ServerTarget | None = None) -> AssistantChoice:
        """Which assistant runs the call, with its overrides merged."""
        overrides = body.get("assistantOverrides")
        if overrides is not None and not isinstance(overrides, dict):
            raise ValidationFailed("assistantOverrides must be an object",
                                   {"assistantOverrides": "must be an object"})
        if body.get("assistantId") and body.get("assistant"):
            raise ValidationFailed("Give assistantId or assistant, not both",
                                   {"assistant": "conflicts with assistantId"})
        if body.get("assistantId"):
            return await self.stored(who, str(body["assistantId"]), overrides)
        if body.get("squadId") and self.squads is not None:
            # A squad's call starts with members[0]; its members transfer to each other
            # through the transfer tools the squad put on their agents.
            first = await self.squads.first_member(who, str(body["squadId"]))
            squad = body.get("squadOverrides")
            return await self.stored(who, first, la.merge_overrides(
                squad if isinstance(squad, dict) else {}, overrides))
        if isinstance(body.get("assistant"), dict):
            return AssistantChoice(None, la.merge_overrides(body["assistant"], overrides))
        if body.get("assistant") is not None:
            raise ValidationFailed("assistant must be an object", {"assistant": "object"})
        ask = ask or self.org_server
        if ask is None:
            raise ValidationFailed(
                f"The call names no assistant and no server URL is set to ask for one "
                f"({NO_ASSISTANT})", {"assistantId": "required"}, code=NO_ASSISTANT)
        request: dict[str, Any] = {"type": "assistant-request", "call": call}
        for key in ("customer", "phoneNumber"):
            if body.get(key):
                request[key] = la.public(body[key])
        chosen = await ask_for_assistant(self.messages, ask, request)
        if chosen.assistant_id:
            chosen = await self.stored(who, chosen.assistant_id, chosen.assistant)
        return replace(chosen, server=ask)

    async def stored(self, who: Principal, assistant_id: str,
                     overrides: dict[str, Any] | None) -> AssistantChoice:
        found = await self.assistants.get(who, assistant_id)
        document = found.json()
        # the server and its credentials as stored (a view may hide their secrets)
        document.update({k: found.doc[k] for k in CREDENTIAL_KEYS if k in found.doc})
        return AssistantChoice(assistant_id, la.merge_overrides(document, overrides))

    async def _stored_tools(self, who: Principal, assistant: dict[str, Any]
                            ) -> list[RuntimeTool]:
        """Stored ``function`` tools of ``model.toolIds`` (they have no Openline tool: the
        server runs them), plus inline ones the overrides add."""
        model = assistant.get("model") if isinstance(assistant.get("model"), dict) else {}
        ids = [i for i in (model or {}).get("toolIds") or [] if isinstance(i, str)]
        found = await self.docs.many(who, "tool", ids)
        credentials = assistant.get("credentials")
        tools = [la.function_tool(d.doc.get("function"), d.doc, f"model.toolIds.{d.id}",
                                  credentials)
                 for d in found.values() if d.doc.get("type") == "function"]
        # a transferCall with no destination asks the server (the mapping made no tool)
        tools += [la.transfer_tool(d.doc, f"model.toolIds.{d.id}") for d in found.values()
                  if d.doc.get("type") == "transferCall" and not d.doc.get("destinations")]
        inline = [t for t in (model or {}).get("tools") or []
                  if isinstance(t, dict) and t.get("type") == "function"]
        tools += [la.function_tool(t.get("function"), t, f"model.tools.{i}", credentials)
                  for i, t in enumerate(inline)]
        return tools
