"""Agents: create, upsert, update (every version kept), enable/disable, phone numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain import ids
from openline.domain.agent import BUILT_IN_TOOL_NAMES, Agent, AgentSpec
from openline.domain.agent_changes import merge
from openline.domain.errors import Conflict, ValidationFailed
from openline.domain.limits import MAX_AGENTS_PER_PROJECT
from openline.domain.phone_number import PhoneAssignment
from openline.domain.unset import is_set
from openline.domain.validation import first_error_message
from openline.services import lookup, mapping
from openline.services import phone_numbers as phones
from openline.services.commands import (
    AddCustomNumber,
    CreateAgent,
    RemoveCustomNumber,
    UpdateAgent,
    UpdatePhoneNumber,
)
from openline.services.external_storage import check_policy_exists
from openline.services.masking import keep_agent_secrets, keep_endpoint_secrets
from openline.services.principal import Principal
from openline.store import tables as t
from openline.store.tables import utcnow


@dataclass(frozen=True)
class UpsertResult:
    """The agent after an upsert; ``updated`` is false when nothing changed."""

    agent: Agent
    inserted: bool
    updated: bool


def check_rules(spec: AgentSpec, phone: PhoneAssignment | None) -> None:
    """The cross-field rules of a configuration and a phone assignment, all errors at once."""
    errors = {**spec.rule_errors(), **(phone.rule_errors() if phone else {})}
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)


class AgentService:
    def __init__(self, db: Any, pool: Sequence[str] = phones.DEFAULT_POOL) -> None:
        self.db = db
        self.pool = tuple(pool)

    async def list_all(self, who: Principal, project: str | None) -> list[Agent]:
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            rows = list(await s.scalars(
                select(t.Agent).where(t.Agent.project_id == proj.id)
                .order_by(t.Agent.created_at, t.Agent.name)
            ))
            numbers = await phones.numbers_of(s, [a.id for a in rows])
            return [mapping.agent(a, proj, numbers[a.id]) for a in rows]

    async def get(self, who: Principal, project: str | None, name_or_id: str) -> Agent:
        async with self.db.session() as s:
            row, proj = await lookup.agent(s, who.workspace_id, project, name_or_id)
            return await self._agent(s, row, proj)

    async def _agent(self, s: AsyncSession, row: t.Agent, proj: t.Project) -> Agent:
        return mapping.agent(row, proj, (await phones.numbers_of(s, [row.id]))[row.id])

    async def create(self, who: Principal, cmd: CreateAgent) -> Agent:
        check_rules(cmd.spec, cmd.phone)
        async with _IntegrityAsConflict(), self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, cmd.project)
            row = await self._insert(s, who, proj, cmd.spec, cmd.phone)
            return await self._agent(s, row, proj)

    async def _insert(self, s: AsyncSession, who: Principal, proj: t.Project, spec: AgentSpec,
                      phone: PhoneAssignment | None) -> t.Agent:
        await self._check_refs(s, proj, spec)
        await lookup.ensure_name_free(s, t.Agent, proj.id, spec.name, None, _taken(spec.name))
        await _ensure_room(s, proj)
        stored = mapping.dump_spec(spec)
        row = t.Agent(id=ids.new_id(ids.AGENT), project_id=proj.id, name=spec.name, spec=stored)
        s.add(row)
        await s.flush()  # no ORM relationships, so parents are flushed explicitly
        s.add(t.AgentVersion(agent_id=row.id, version_number=1, spec=stored))
        await s.flush()
        if phone is not None:
            await phones.apply_mode(s, who.workspace_id, row.id, phone, self.pool)
            await s.flush()
        return row

    async def upsert(self, who: Principal, cmd: CreateAgent) -> UpsertResult:
        """Create the agent, or make the existing one of that name match ``cmd``."""
        check_rules(cmd.spec, cmd.phone)
        spec = cmd.spec
        async with _IntegrityAsConflict(), self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, cmd.project)
            existing = await s.scalar(
                select(t.Agent).where(t.Agent.project_id == proj.id, t.Agent.name == spec.name)
            )
            if existing is None:
                row = await self._insert(s, who, proj, spec, cmd.phone)
                return UpsertResult(await self._agent(s, row, proj), True, False)
            spec = keep_agent_secrets(spec, mapping.load_spec(AgentSpec, existing.spec))
            changed = await self._apply(s, who, proj, existing, spec, cmd.phone)
            return UpsertResult(await self._agent(s, existing, proj), False, changed)

    async def update(self, who: Principal, cmd: UpdateAgent) -> Agent:
        """Apply ``cmd.changes`` (and the phone assignment, when given) to the agent."""
        async with _IntegrityAsConflict(), self.db.session() as s:
            row, proj = await lookup.agent(s, who.workspace_id, cmd.key.project,
                                           cmd.key.name_or_id)
            stored = mapping.load_spec(AgentSpec, row.spec)
            spec = keep_agent_secrets(merge(stored, cmd.changes), stored)
            phone = cmd.phone if is_set(cmd.phone) else None
            check_rules(spec, phone)
            await self._apply(s, who, proj, row, spec, phone)
            return await self._agent(s, row, proj)

    async def _apply(self, s: AsyncSession, who: Principal, proj: t.Project, row: t.Agent,
                     spec: AgentSpec, phone: PhoneAssignment | None) -> bool:
        """Store ``spec`` as the agent's next version (unless unchanged); True if anything
        (configuration or numbers) changed."""
        await self._check_refs(s, proj, spec)
        if spec.name != row.name:
            await lookup.ensure_name_free(s, t.Agent, proj.id, spec.name, row.id,
                                          _taken(spec.name))
        before = {n.number for n in (await phones.numbers_of(s, [row.id]))[row.id]}
        if phone is not None:
            await phones.apply_mode(s, who.workspace_id, row.id, phone, self.pool)
            await s.flush()
        after = {n.number for n in (await phones.numbers_of(s, [row.id]))[row.id]}
        stored = mapping.dump_spec(spec)
        if stored == row.spec:
            return before != after
        row.version_number += 1
        row.name, row.spec, row.updated_at = spec.name, stored, utcnow()
        s.add(t.AgentVersion(agent_id=row.id, version_number=row.version_number, spec=stored))
        await s.flush()
        return True

    async def _check_refs(self, s: AsyncSession, proj: t.Project, spec: AgentSpec) -> None:
        await check_policy_exists(s, proj.id, spec.external_storage_policy)
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

    async def delete(self, who: Principal, project: str | None, name_or_id: str) -> None:
        async with self.db.session() as s:
            row, proj = await lookup.agent(s, who.workspace_id, project, name_or_id)
            if proj.default_agent_id == row.id:
                proj.default_agent_id = None
            await s.delete(row)

    async def set_disabled(
        self, who: Principal, project: str | None, name_or_id: str, disabled: bool
    ) -> None:
        async with self.db.session() as s:
            row, _ = await lookup.agent(s, who.workspace_id, project, name_or_id)
            row.is_disabled = disabled

    async def add_custom_number(self, who: Principal, cmd: AddCustomNumber) -> None:
        async with self.db.session() as s:
            row, _ = await lookup.agent(s, who.workspace_id, cmd.key.project, cmd.key.name_or_id)
            await phones.add_custom(s, who.workspace_id, row.id, cmd.number, cmd.sip,
                                    cmd.configuration_endpoint)

    async def remove_custom_number(self, who: Principal, cmd: RemoveCustomNumber) -> None:
        async with self.db.session() as s:
            row, _ = await lookup.agent(s, who.workspace_id, cmd.key.project, cmd.key.name_or_id)
            number = await phones.owned_number(s, who.workspace_id, row.id, cmd.number)
            if number.source != "custom":
                raise ValidationFailed("Phone number is not a custom number",
                                       {"phone_number": "not a custom number"})
            await s.delete(number)

    async def update_number(self, who: Principal, cmd: UpdatePhoneNumber) -> None:
        async with self.db.session() as s:
            row, _ = await lookup.agent(s, who.workspace_id, cmd.key.project, cmd.key.name_or_id)
            number = await phones.owned_number(s, who.workspace_id, row.id, cmd.number)
            if is_set(cmd.configuration_endpoint):
                stored = mapping.phone_number(number).configuration_endpoint
                number.configuration_endpoint = mapping.endpoint_to_row(
                    keep_endpoint_secrets(cmd.configuration_endpoint, stored))


async def _ensure_room(s: AsyncSession, proj: t.Project) -> None:
    await lookup.ensure_room(s, t.Agent.project_id, proj.id, MAX_AGENTS_PER_PROJECT,
                             f"A project has at most {MAX_AGENTS_PER_PROJECT} agents", "project")


class _IntegrityAsConflict:
    """Turns a unique-constraint race (two creates at once) into the same 409 as the check."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, IntegrityError):
            raise Conflict("An agent with that name or phone number already exists") from exc


def _taken(name: str) -> str:
    return f"An agent named {name!r} already exists in this project"
