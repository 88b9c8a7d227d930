"""The SIP calls one node handles, and which agent a dialled number reaches.

A call is *pending* while it is being set up (inbound: from the INVITE to the 200 OK;
outbound: while it rings): it is registered in the live registry as a
``telephony.calls.PendingCall`` so its lease is renewed and ``conversations.cancel`` reaches it (an
outbound call is then CANCELled). Once media flows the call session takes its place.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from aiosipua import Dialog, IncomingCall, OutgoingCall
from sqlalchemy import select

from openline.audio.codecs import PCM_8000
from openline.services.call_setup import PreparedCall
from openline.services.telephony.numbers import NumberOwner
from openline.store import tables as t
from openline.store.db import Database
from openline.transports.sip import SipTransport
from openline.transports.sip_media import Answer, Reservation
from openline.voice.tools import PhoneTransfer

Direction = Literal["inbound", "outbound"]


@dataclass
class SipCall:
    """One SIP dialog of an Openline conversation."""

    prepared: PreparedCall
    direction: Direction
    call_id: str
    #: the agent's number and the other party's
    agent_number: str
    other_number: str
    #: where in-dialog requests go (the trunk / the caller's signalling address)
    peer: tuple[str, int]
    #: host[:port] used in Refer-To URIs (the trunk)
    trunk: str
    incoming: IncomingCall | None = None
    outgoing: OutgoingCall | None = None
    reservation: Reservation | None = None
    answer: Answer | None = None
    transport: SipTransport | None = None
    transfer: PhoneTransfer | None = None
    refer_reply: asyncio.Future[tuple[int, str]] | None = None
    canceled: bool = False
    ended_by: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def conversation_id(self) -> str:
        return self.prepared.id

    @property
    def workspace_id(self) -> str:
        return self.prepared.workspace_id

    @property
    def dialog(self) -> Dialog | None:
        if self.incoming is not None:
            return self.incoming.dialog
        return self.outgoing.dialog if self.outgoing is not None else None


@dataclass(frozen=True)
class SipNumberOwner:
    owner: NumberOwner
    #: the number's trunk (``X-Sip-Address``), None for a pool or plain custom number
    trunk_address: str | None


async def sip_owner_of(db: Database, number: str) -> SipNumberOwner | None:
    """The agent answering ``number`` over SIP: any of its numbers (pool, custom, custom
    with SIP details), the oldest assignment first."""
    async with db.session() as s:
        rows = (await s.execute(
            select(t.PhoneNumber, t.Agent, t.Workspace)
            .join(t.Agent, t.Agent.id == t.PhoneNumber.agent_id)
            .join(t.Workspace, t.Workspace.id == t.PhoneNumber.workspace_id)
            .where(t.PhoneNumber.number == number)
            .order_by(t.PhoneNumber.created_at))).all()
    for row, agent, workspace in rows:
        address = (row.sip or {}).get("address")
        return SipNumberOwner(NumberOwner(row.number, agent, workspace,
                                          row.configuration_endpoint), address or None)
    return None


@dataclass(frozen=True)
class SipNumber:
    number: str
    address: str
    username: str | None
    password: str | None


async def agent_sip_number(db: Database, agent_id: str) -> SipNumber | None:
    """The agent's oldest custom number that carries SIP details (its trunk)."""
    async with db.session() as s:
        rows = await s.scalars(select(t.PhoneNumber).where(t.PhoneNumber.agent_id == agent_id)
                               .order_by(t.PhoneNumber.created_at, t.PhoneNumber.number))
        for row in rows:
            sip = row.sip or {}
            if sip.get("address"):
                return SipNumber(row.number, str(sip["address"]), sip.get("username"),
                                 sip.get("password"))
    return None


def wire_formats(prepared: PreparedCall) -> PreparedCall:
    """A phone line carries 8 kHz audio whatever the configuration endpoint answered: the
    call's formats are the line's (``pcm_8000``; G.711 is en/decoded by the transport)."""
    cfg = prepared.resolved.session
    cfg.input_format = cfg.output_format = PCM_8000
    return prepared


def number_from_uri(uri: str) -> str:
    """The user part of a SIP URI as a number: ``sip:+1555@host`` -> ``+1555``; a user
    of digits gets a leading ``+`` (trunks often drop it)."""
    user = uri.strip().strip("<>")
    for prefix in ("sips:", "sip:", "tel:"):
        if user.lower().startswith(prefix):
            user = user[len(prefix):]
    user = user.split("@", 1)[0].split(";", 1)[0].strip()
    return "+" + user if user.isdigit() else user
