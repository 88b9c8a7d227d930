"""Which agent answers a Twilio number, and which number an agent calls from.

An agent's pool numbers and its custom numbers added without SIP details are Twilio
numbers when Twilio is configured; a custom number with a SIP address is reached through
its own trunk and is never dialled or answered through Twilio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from openline.store import tables as t
from openline.store.db import Database

#: what Twilio sends as ``From`` when the caller withheld their number
WITHHELD = {"", "anonymous", "+266696687", "+7378742833", "+86282452253", "+2562533",
            "restricted", "unknown"}


@dataclass(frozen=True)
class NumberOwner:
    number: str
    agent: t.Agent
    workspace: t.Workspace
    configuration_endpoint: dict[str, Any] | None


def caller_number(value: str | None) -> str:
    """Phonic's ``from_phone_number``: ``anonymous`` when the caller's number is withheld."""
    value = (value or "").strip()
    return "anonymous" if value.lower() in WITHHELD else value


def _is_twilio(row: t.PhoneNumber) -> bool:
    return not (row.sip or {}).get("address")


async def owner_of(db: Database, number: str) -> NumberOwner | None:
    """The agent answering ``number`` (the oldest assignment if several workspaces hold
    it), or None."""
    async with db.session() as s:
        rows = (await s.execute(
            select(t.PhoneNumber, t.Agent, t.Workspace)
            .join(t.Agent, t.Agent.id == t.PhoneNumber.agent_id)
            .join(t.Workspace, t.Workspace.id == t.PhoneNumber.workspace_id)
            .where(t.PhoneNumber.number == number)
            .order_by(t.PhoneNumber.created_at))).all()
    for row, agent, workspace in rows:
        if _is_twilio(row):
            return NumberOwner(row.number, agent, workspace, row.configuration_endpoint)
    return None


async def calling_number(db: Database, agent_id: str) -> str | None:
    """The number an agent's outbound calls come from: its oldest Twilio number."""
    async with db.session() as s:
        rows = await s.scalars(select(t.PhoneNumber).where(t.PhoneNumber.agent_id == agent_id)
                               .order_by(t.PhoneNumber.created_at, t.PhoneNumber.number))
        return next((row.number for row in rows if _is_twilio(row)), None)
