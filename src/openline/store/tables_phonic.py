"""Tables of the complete Phonic dialect: data protection, external storage, socket JWTs.

They live on the same ``Base`` as ``tables.py`` (one metadata, one Alembic history,
migration 0008); ``store/migrations/env.py`` and ``store/db.py`` import this module.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from openline.store.sealed import SealedColumn, SealedString
from openline.store.tables import Base, utcnow


class ConversationRetention(Base):
    """What the data-protection settings did to one conversation's stored data.

    ``*_due_at`` is when the agent's retention policy deletes transcripts or audio (the
    scheduled job in ``postcall/retention.py``); ``*_deleted_at`` when it did (Phonic's
    ``deletion_info``). Whether transcripts were stored redacted is in the conversation's
    configuration snapshot (``enable_redaction``).
    """

    __tablename__ = "conversation_retention"
    __table_args__ = (
        Index("ix_conversation_retention_transcripts_due", "transcripts_due_at"),
        Index("ix_conversation_retention_audio_due", "audio_due_at"),
    )
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    transcripts_due_at: Mapped[datetime | None] = mapped_column(default=None)
    audio_due_at: Mapped[datetime | None] = mapped_column(default=None)
    transcripts_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    audio_recordings_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    #: external storage: when the artifacts reached the bucket, or why they did not
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    delivery_error: Mapped[str | None] = mapped_column(Text, default=None)


class ExternalStoragePolicy(Base):
    """An S3-compatible bucket that receives an agent's recordings and transcripts.

    Both credentials are sealed at rest (``store/sealed.py``) and never returned.
    """

    __tablename__ = "external_storage_policies"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    endpoint_url: Mapped[str] = mapped_column(String(2048))
    bucket: Mapped[str] = mapped_column(String(255))
    region: Mapped[str | None] = mapped_column(String(64), default=None)
    key_prefix: Mapped[str | None] = mapped_column(String(512), default=None)
    addressing_style: Mapped[str] = mapped_column(String(16), default="auto")
    access_key_id: Mapped[str] = mapped_column(SealedString())
    secret_access_key: Mapped[str] = mapped_column(SealedString())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SocketJwtKey(Base):
    """A key a workspace registered to verify the JWTs its backend signs for ``?jwt=``.

    ``key`` is an HMAC secret (HS256) or a PEM public key (RS256, ES256); it is sealed at
    rest either way (a public key is no secret, but one column type keeps one rule).
    """

    __tablename__ = "socket_jwt_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(255))
    audience: Mapped[str] = mapped_column(String(255))
    algorithm: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(SealedString())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SocketJwtUse(Base):
    """A ``jti`` already accepted: the same token cannot open a second socket. Rows are
    dropped once the token has expired (it is refused by its ``exp`` then)."""

    __tablename__ = "socket_jwt_uses"
    key_id: Mapped[str] = mapped_column(
        ForeignKey("socket_jwt_keys.id", ondelete="CASCADE"), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


#: The sealed columns of this module (``tables.SEALED_COLUMNS`` has the others).
SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("external_storage_policies", ("id",), "access_key_id"),
    SealedColumn("external_storage_policies", ("id",), "secret_access_key"),
    SealedColumn("socket_jwt_keys", ("id",), "key"),
)
