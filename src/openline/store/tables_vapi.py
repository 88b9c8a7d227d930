"""Vapi-dialect documents: what a Vapi client sent, kept so that it is returned as sent.

One table holds every Vapi resource kind (assistant, squad, tool, phone-number, file, block,
call): the document is the camelCase body the client gave (unknown keys included), keyed by
the resource's ID. Where a resource maps onto an Openline object (an assistant onto an agent,
a call onto a conversation, a tool onto a tool) the document's ID *is* that object's ID and
``link_id`` names it, so both dialects address the same thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from openline.store.sealed import SealedColumn, SealedJSON
from openline.store.tables import Base, utcnow

#: Secrets inside Vapi documents (sealed at rest): Twilio credentials, SIP passwords,
#: server secrets and headers, tool headers.
VAPI_SECRETS = (
    "twilioAuthToken", "twilioApiSecret", "authentication.password", "server.secret",
    "server.headers.*", "serverUrlSecret", "credential.password", "headers.*",
)


class VapiResource(Base):
    """A Vapi resource document (see the module docstring)."""

    __tablename__ = "vapi_resources"
    __table_args__ = (
        Index("ix_vapi_resources_kind_created", "workspace_id", "kind", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    doc: Mapped[dict[str, Any]] = mapped_column(SealedJSON(VAPI_SECRETS), default=dict)
    #: the Openline object this document maps onto (agent, tool, conversation), if any
    link_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("vapi_resources", ("id",), "doc", VAPI_SECRETS),
)
