"""Agents: create, upsert, update (every version kept), enable/disable, phone numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain import ids
from openline.domain.agent import (
    AGENT_PHONE_FIELDS,
    BUILT_IN_TOOL_NAMES,
    AgentPhoneRequest,
    AgentSpec,
    ConfigurationEndpoint,
)
from openline.domain.errors import Conflict, ValidationFailed
from openline.domain.validation import check_e164, param_errors_from
from openline.services import lookup
from openline.services import phone_numbers as phones
from openline.services.principal import Principal
from openline.store import tables as t
from openline.store.tables import utcnow

SIP_TRANSPORTS = ("auto", "udp", "tcp", "tls")
SIP_ENCRYPTION = ("disabled", "allowed", "required")


@dataclass(frozen=True)
class AgentView:
    agent: t.Agent
    project: t.Project
    numbers: list[t.PhoneNumber]

    @property
    def spec(self) -> dict[str, Any]:
        return self.agent.spec


@dataclass(frozen=True)
class SipCredentials:
    address: str | None
    username: str | None
    password: str | None


def validate_agent_body(body: dict[str, Any]) -> tuple[AgentSpec, AgentPhoneRequest]:
    """Parse an agent body into its spec and phone-number request; all errors at once."""
    errors: dict[str, str] = {}
    spec = phone = None
    try:
        spec = AgentSpec.model_validate({k: v for k, v in body.items()
                                         if k not in AGENT_PHONE_FIELDS})
        errors.update(spec.rule_errors())
    except ValidationError as exc:
        errors.update(param_errors_from(exc))
    try:
        phone = AgentPhoneRequest.model_validate({k: v for k, v in body.items()
                                                  if k in AGENT_PHONE_FIELDS})
        errors.update(phone.rule_errors())
    except ValidationError as exc:
        errors.update(param_errors_from(exc))
    if errors or spec is None or phone is None:
        field, msg = next(iter(errors.items()))
        raise ValidationFailed(f"Invalid parameters: {field}: {msg}", errors)
    return spec, phone


class AgentService:
    def __init__(self, db: Any, pool: Sequence[str] = phones.DEFAULT_POOL) -> None:
        self.db = db
        self.pool = tuple(pool)

    async def list_all(self, who: Principal, project: str | None) -> list[AgentView]:
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            rows = list(await s.scalars(
                select(t.Agent).where(t.Agent.project_id == proj.id)
                .order_by(t.Agent.created_at, t.Agent.name)
            ))
            numbers = await phones.numbers_of(s, [a.id for a in rows])
            return [AgentView(a, proj, numbers[a.id]) for a in rows]

    async def get(self, who: Principal, project: str | None, name_or_id: str) -> AgentView:
        async with self.db.session() as s:
            agent, proj = await lookup.agent(s, who.workspace_id, project, name_or_id)
            return await self._view(s, agent, proj)

    async def _view(self, s: AsyncSession, agent: t.Agent, proj: t.Project) -> AgentView:
        return AgentView(agent, proj, (await phones.numbers_of(s, [agent.id]))[agent.id])

    async def create(self, who: Principal, project: str | None, body: dict[str, Any]) -> AgentView:
        spec, phone = validate_agent_body(body)
        async with self._unique_name(), self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            return await self._insert(s, who, proj, spec, phone, "phone_number" in body)

    async def _insert(
        self, s: AsyncSession, who: Principal, proj: t.Project, spec: AgentSpec,
        phone: AgentPhoneRequest, phone_given: bool,
    ) -> AgentView:
        await self._check_refs(s, proj, spec)
        await lookup.ensure_name_free(s, t.Agent, proj.id, spec.name, None, _taken(spec.name))
        stored = spec.model_dump(mode="json")
        agent = t.Agent(id=ids.new_id(ids.AGENT), project_id=proj.id, name=spec.name, spec=stored)
        s.add(agent)
        await s.flush()  # no ORM relationships, so parents are flushed explicitly
        s.add(t.AgentVersion(agent_id=agent.id, version_number=1, spec=stored))
        await s.flush()
        if phone_given or phone.wanted_custom_numbers():
            await phones.apply_mode(s, who.workspace_id, agent.id, _mode(phone), self.pool)
            await s.flush()
        return await self._view(s, agent, proj)

    async def upsert(
        self, who: Principal, project: str | None, body: dict[str, Any]
    ) -> tuple[AgentView, bool, bool]:
        """Create the agent, or make the existing one of that name match ``body``.

        Returns ``(view, inserted, updated)``; ``updated`` is false when nothing changed.
        """
        spec, phone = validate_agent_body(body)
        async with self._unique_name(), self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            existing = await s.scalar(
                select(t.Agent).where(t.Agent.project_id == proj.id, t.Agent.name == spec.name)
            )
            if existing is None:
                view = await self._insert(s, who, proj, spec, phone, "phone_number" in body)
                return view, True, False
            changed = await self._apply(s, who, proj, existing, spec, phone, body)
            return await self._view(s, existing, proj), False, changed

    async def update(
        self, who: Principal, project: str | None, name_or_id: str, patch: dict[str, Any]
    ) -> AgentView:
        async with self._unique_name(), self.db.session() as s:
            agent, proj = await lookup.agent(s, who.workspace_id, project, name_or_id)
            merged = {**agent.spec, **{k: v for k, v in patch.items()
                                       if k not in AGENT_PHONE_FIELDS}}
            phone_patch = {k: v for k, v in patch.items() if k in AGENT_PHONE_FIELDS}
            if "custom_phone_numbers" in phone_patch and "phone_number" not in phone_patch:
                phone_patch["phone_number"] = "custom"
            spec, phone = validate_agent_body({**merged, **phone_patch})
            await self._apply(s, who, proj, agent, spec, phone, phone_patch)
            return await self._view(s, agent, proj)

    async def _apply(
        self, s: AsyncSession, who: Principal, proj: t.Project, agent: t.Agent,
        spec: AgentSpec, phone: AgentPhoneRequest, body: dict[str, Any],
    ) -> bool:
        await self._check_refs(s, proj, spec)
        if spec.name != agent.name:
            await lookup.ensure_name_free(s, t.Agent, proj.id, spec.name, agent.id,
                                          _taken(spec.name))
        before = {n.number for n in (await phones.numbers_of(s, [agent.id]))[agent.id]}
        if "phone_number" in body or "custom_phone_numbers" in body:
            await phones.apply_mode(s, who.workspace_id, agent.id, _mode(phone), self.pool)
            await s.flush()
        after = {n.number for n in (await phones.numbers_of(s, [agent.id]))[agent.id]}
        stored = spec.model_dump(mode="json")
        if stored == agent.spec:
            return before != after
        agent.version_number += 1
        agent.name, agent.spec, agent.updated_at = spec.name, stored, utcnow()
        s.add(t.AgentVersion(agent_id=agent.id, version_number=agent.version_number, spec=stored))
        await s.flush()
        return True

    async def _check_refs(self, s: AsyncSession, proj: t.Project, spec: AgentSpec) -> None:
        custom = [n for n in spec.tools if n not in BUILT_IN_TOOL_NAMES]
        if not custom:
            return
        found = set(await s.scalars(
            select(t.Tool.name).where(t.Tool.project_id == proj.id, t.Tool.name.in_(custom))
        ))
        missing = [n for n in custom if n not in found]
        if missing:
            raise ValidationFailed(
                f"Unknown tools: {', '.join(missing)}",
                {"tools": f"no such tool in this project: {', '.join(missing)}"},
            )

    def _unique_name(self) -> _IntegrityAsConflict:
        return _IntegrityAsConflict()

    async def delete(self, who: Principal, project: str | None, name_or_id: str) -> None:
        async with self.db.session() as s:
            agent, proj = await lookup.agent(s, who.workspace_id, project, name_or_id)
            if proj.default_agent_id == agent.id:
                proj.default_agent_id = None
            await s.delete(agent)

    async def set_disabled(
        self, who: Principal, project: str | None, name_or_id: str, disabled: bool
    ) -> None:
        async with self.db.session() as s:
            agent, _ = await lookup.agent(s, who.workspace_id, project, name_or_id)
            agent.is_disabled = disabled

    async def add_custom_number(
        self, who: Principal, project: str | None, name_or_id: str, body: dict[str, Any],
        creds: SipCredentials,
    ) -> None:
        number = _number(body)
        endpoint = _endpoint(body)
        sip = _sip(body.get("sip"), creds)
        async with self.db.session() as s:
            agent, _ = await lookup.agent(s, who.workspace_id, project, name_or_id)
            await phones.add_custom(s, who.workspace_id, agent.id, number, sip, endpoint)

    async def delete_custom_number(
        self, who: Principal, project: str | None, name_or_id: str, body: dict[str, Any]
    ) -> None:
        number = _number(body)
        async with self.db.session() as s:
            agent, _ = await lookup.agent(s, who.workspace_id, project, name_or_id)
            row = await phones.owned_number(s, who.workspace_id, agent.id, number)
            if row.source != "custom":
                raise ValidationFailed("Phone number is not a custom number",
                                       {"phone_number": "not a custom number"})
            await s.delete(row)

    async def update_number(
        self, who: Principal, project: str | None, name_or_id: str, body: dict[str, Any]
    ) -> None:
        number = _number(body)
        endpoint = _endpoint(body)
        async with self.db.session() as s:
            agent, _ = await lookup.agent(s, who.workspace_id, project, name_or_id)
            row = await phones.owned_number(s, who.workspace_id, agent.id, number)
            if "configuration_endpoint" in body:
                row.configuration_endpoint = endpoint


class _IntegrityAsConflict:
    """Turns a unique-constraint race (two creates at once) into the same 409 as the check."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, IntegrityError):
            raise Conflict("An agent with that name or phone number already exists") from exc


def _taken(name: str) -> str:
    return f"An agent named {name!r} already exists in this project"


def _mode(phone: AgentPhoneRequest) -> AgentPhoneRequest:
    if phone.phone_number is None and phone.wanted_custom_numbers():
        return phone.model_copy(update={"phone_number": "custom"})
    return phone


def _number(body: dict[str, Any]) -> str:
    value = body.get("phone_number")
    try:
        if not isinstance(value, str):
            raise ValueError("phone_number is required")
        return check_e164(value)
    except ValueError as exc:
        raise ValidationFailed(f"Invalid parameters: {exc}", {"phone_number": str(exc)}) from exc


def _endpoint(body: dict[str, Any]) -> dict[str, Any] | None:
    raw = body.get("configuration_endpoint")
    if raw is None:
        return None
    try:
        return ConfigurationEndpoint.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        errors = {f"configuration_endpoint.{k}": v for k, v in param_errors_from(exc).items()}
        raise ValidationFailed("Invalid configuration_endpoint", errors) from exc


def _sip(raw: Any, creds: SipCredentials) -> dict[str, Any] | None:
    given = [creds.address, creds.username, creds.password]
    if any(given) and not all(given):
        raise ValidationFailed(
            "X-Sip-Address, X-Sip-Auth-Username and X-Sip-Auth-Password go together",
            {"X-Sip-Address": "all three SIP headers must be provided together"},
        )
    sip: dict[str, Any] = {}
    if raw is not None:
        if not isinstance(raw, dict):
            raise ValidationFailed("Invalid sip", {"sip": "must be an object"})
        transport = raw.get("transport", "auto")
        encryption = raw.get("media_encryption", "disabled")
        if transport not in SIP_TRANSPORTS:
            raise ValidationFailed("Invalid sip", {"sip.transport": f"one of {SIP_TRANSPORTS}"})
        if encryption not in SIP_ENCRYPTION:
            raise ValidationFailed(
                "Invalid sip", {"sip.media_encryption": f"one of {SIP_ENCRYPTION}"}
            )
        sip.update(transport=transport, media_encryption=encryption)
    if creds.address:
        if ";transport=" in creds.address:
            raise ValidationFailed(
                "Invalid SIP address",
                {"X-Sip-Address": "must not carry ;transport=, use sip.transport"},
            )
        sip.update(address=creds.address, username=creds.username, password=creds.password)
    return sip or None
