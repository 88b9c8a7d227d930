"""Phone-number inventory: a configurable pool plus custom (bring-your-own) numbers.

A number belongs to at most one agent per workspace (unique constraint); the pool
hands out its lowest free number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain import ids
from openline.domain.agent import ConfigurationEndpoint
from openline.domain.errors import Conflict, NotFound, ValidationFailed
from openline.domain.phone_number import PhoneAssignment, SipSettings
from openline.domain.validation import check_e164
from openline.services import mapping
from openline.store import tables as t

#: Fictional numbers (555-01xx) that Openline's own SIP endpoint answers once telephony lands.
DEFAULT_POOL = tuple(f"+1555555{n:04d}" for n in range(100, 200))


def parse_pool(spec: str) -> tuple[str, ...]:
    """Parse ``"+15555550100-+15555550199,+15551234567"`` into a list of E.164 numbers."""
    numbers: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        first, _, last = part.partition("-+")
        if last:
            last = "+" + last
            lo, hi = int(check_e164(first)[1:]), int(check_e164(last)[1:])
            if hi < lo or hi - lo > 100_000:
                raise ValueError(f"bad phone number range {part!r}")
            numbers.extend(f"+{n}" for n in range(lo, hi + 1))
        else:
            numbers.append(check_e164(first))
    return tuple(dict.fromkeys(numbers))


async def numbers_of(s: AsyncSession, agent_ids: Sequence[str]) -> dict[str, list[t.PhoneNumber]]:
    """Each agent's numbers, oldest first."""
    out: dict[str, list[t.PhoneNumber]] = {a: [] for a in agent_ids}
    if not agent_ids:
        return out
    rows = await s.scalars(
        select(t.PhoneNumber).where(t.PhoneNumber.agent_id.in_(list(agent_ids)))
        .order_by(t.PhoneNumber.created_at, t.PhoneNumber.number)
    )
    for row in rows:
        out[row.agent_id].append(row)
    return out


async def apply_mode(
    s: AsyncSession, workspace_id: str, agent_id: str, req: PhoneAssignment,
    pool: Sequence[str],
) -> None:
    """Make the agent's numbers match the requested assignment."""
    current = (await numbers_of(s, [agent_id]))[agent_id]
    if req.mode == "none":
        await s.execute(delete(t.PhoneNumber).where(t.PhoneNumber.agent_id == agent_id))
        return
    if req.mode == "pool":
        for row in current:
            if row.source != "pool":
                await s.delete(row)
        if not any(row.source == "pool" for row in current):
            await _draw_from_pool(s, workspace_id, agent_id, pool)
        return
    wanted = req.custom_numbers
    for row in current:
        if row.number not in wanted:
            await s.delete(row)
    await s.flush()
    owned = {row.number for row in current}
    for number in wanted:
        if number in owned:
            continue
        other = await _owner(s, workspace_id, number)
        if other is not None:
            raise Conflict(f"Phone number {number} is already assigned to another agent")
        s.add(_row(workspace_id, agent_id, number, "custom"))


async def _owner(s: AsyncSession, workspace_id: str, number: str) -> t.PhoneNumber | None:
    return await s.scalar(
        select(t.PhoneNumber).where(
            t.PhoneNumber.workspace_id == workspace_id, t.PhoneNumber.number == number
        )
    )


async def _draw_from_pool(
    s: AsyncSession, workspace_id: str, agent_id: str, pool: Sequence[str]
) -> None:
    taken = set(await s.scalars(
        select(t.PhoneNumber.number).where(t.PhoneNumber.workspace_id == workspace_id)
    ))
    for number in pool:
        if number not in taken:
            s.add(_row(workspace_id, agent_id, number, "pool"))
            return
    raise Conflict("No phone numbers left in the pool", code="phone_number_pool_exhausted")


def _row(workspace_id: str, agent_id: str, number: str, source: str, **extra: Any) -> t.PhoneNumber:
    return t.PhoneNumber(
        id=ids.new_id("pn"), workspace_id=workspace_id, agent_id=agent_id, number=number,
        source=source, **extra,
    )


async def add_custom(
    s: AsyncSession, workspace_id: str, agent_id: str, number: str,
    sip_settings: SipSettings | None, endpoint: ConfigurationEndpoint | None,
) -> None:
    """Attach a custom number (idempotent for the same agent: its settings are replaced)."""
    sip = mapping.sip_to_row(sip_settings)
    configuration_endpoint = mapping.endpoint_to_row(endpoint)
    owner = await _owner(s, workspace_id, number)
    if owner is not None and owner.agent_id != agent_id:
        raise ValidationFailed(
            f"Phone number {number} is already assigned to another agent",
            {"phone_number": "already assigned to another agent"},
        )
    if owner is not None:
        owner.sip, owner.configuration_endpoint = sip, configuration_endpoint
        return
    s.add(_row(workspace_id, agent_id, number, "custom", sip=sip,
               configuration_endpoint=configuration_endpoint))


async def owned_number(
    s: AsyncSession, workspace_id: str, agent_id: str, number: str
) -> t.PhoneNumber:
    """The agent's row for ``number``: 404 when unknown, 400 when it is another agent's."""
    row = await _owner(s, workspace_id, number)
    if row is None:
        raise NotFound("Phone number not found")
    if row.agent_id != agent_id:
        raise ValidationFailed(
            "Phone number is not assigned to this agent",
            {"phone_number": "not assigned to this agent"},
        )
    return row
