"""Vapi live calls: what a call created through the Vapi dialect carries beyond its
conversation (the create request as the client sent it, its server-URL settings, the
Vapi ``endedReason`` when the engine's ``ended_by`` cannot say it).

One row per Vapi call; its id is the conversation's id, so the conversation row holds
everything else (items, recording, timings). Registered on the shared ``Base`` like
``tables_postcall``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from openline.store.sealed import SealedColumn, SealedString
from openline.store.tables import Base, utcnow


class VapiCall(Base):
    """A call created with ``POST /call`` (or answered for a Vapi phone number)."""

    __tablename__ = "vapi_calls"
    id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"),
                                    primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), index=True)
    #: ``vapi.websocketCall`` | ``outboundPhoneCall`` | ``inboundPhoneCall``
    call_type: Mapped[str] = mapped_column(String(32))
    #: the create body as sent, with server credentials removed (``server`` holds them)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: where server-URL messages go, with their credential: JSON text, sealed at rest
    server: Mapped[str | None] = mapped_column(SealedString(), default=None)
    #: Vapi's reason when it says more than the conversation's ``ended_by``
    ended_reason: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


SEALED_COLUMNS: tuple[SealedColumn, ...] = (SealedColumn("vapi_calls", ("id",), "server"),)
