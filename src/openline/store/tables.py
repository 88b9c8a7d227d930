"""SQLAlchemy 2 table definitions. One schema for SQLite and PostgreSQL.

Configuration documents (agent, tool, schema specs) are stored as JSON: they are
validated by ``openline.domain`` before they are written, and their shape evolves
with the API more often than the relational parts do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from openline.store.sealed import SealedColumn, SealedJSON

#: Where secrets sit inside the stored documents (sealed at rest, see ``store/sealed.py``).
ENDPOINT_HEADERS = ("configuration_endpoint.headers.*",)
TOOL_HEADERS = ("endpoint_headers.*",)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Workspace(Base):
    __tablename__ = "workspaces"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    max_active_conversations: Mapped[int] = mapped_column(Integer, default=100)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AuthToken(Base):
    """Short-lived session and conversation tokens (hashed, like API keys)."""

    __tablename__ = "auth_tokens"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    conversation_ids: Mapped[list[Any] | None] = mapped_column(default=None)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    default_agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    max_active_conversations: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(SealedJSON(ENDPOINT_HEADERS))
    version_number: Mapped[int] = mapped_column(Integer, default=1)
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentVersion(Base):
    """Every version of every agent's configuration is kept."""

    __tablename__ = "agent_versions"
    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    version_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(SealedJSON(ENDPOINT_HEADERS))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PhoneNumber(Base):
    """A number owned by the workspace: drawn from the pool or brought as a custom number."""

    __tablename__ = "phone_numbers"
    __table_args__ = (UniqueConstraint("workspace_id", "number"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(20))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    sip: Mapped[dict[str, Any] | None] = mapped_column(SealedJSON(("password",)), default=None)
    configuration_endpoint: Mapped[dict[str, Any] | None] = mapped_column(
        SealedJSON(("headers.*",)), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tool(Base):
    __tablename__ = "tools"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(SealedJSON(TOOL_HEADERS))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExtractionSchema(Base):
    __tablename__ = "extraction_schemas"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvalPrompt(Base):
    __tablename__ = "eval_prompts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    prompt: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_project_started", "project_id", "started_at", "id"),
        Index("ix_conversations_project_external", "project_id", "external_id"),
        Index("ix_conversations_open_lease", "ended_at", "lease_until"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    agent_name: Mapped[str | None] = mapped_column(String(128), default=None)
    external_id: Mapped[str | None] = mapped_column(String(256), default=None)
    origin: Mapped[str] = mapped_column(String(32), default="direct")
    #: the resolved configuration snapshot (it copies the configuration endpoint's headers)
    config: Mapped[dict[str, Any]] = mapped_column(SealedJSON(ENDPOINT_HEADERS), default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    ended_by: Mapped[str | None] = mapped_column(String(64), default=None)
    live_transcript: Mapped[str | None] = mapped_column(Text, default=None)
    post_call_transcript: Mapped[str | None] = mapped_column(Text, default=None)
    summary: Mapped[str | None] = mapped_column(Text, default=None)
    latencies_ms: Mapped[list[Any]] = mapped_column(default=list)
    interruptions_count: Mapped[int] = mapped_column(Integer, default=0)
    task_results: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, default=None)
    call_info: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    recording_path: Mapped[str | None] = mapped_column(String(512), default=None)
    #: the node running the call, and its lease (renewed while the call runs)
    owner_node: Mapped[str | None] = mapped_column(String(64), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)

    def close(self, ended_at: datetime, ended_by: str) -> None:
        """Store the end: when, why, how long; the lease is released."""
        self.ended_at, self.ended_by = ended_at, ended_by
        self.duration_ms = round((ended_at - self.started_at).total_seconds() * 1000, 1)
        self.lease_until = None


class ConversationItem(Base):
    __tablename__ = "conversation_items"
    __table_args__ = (UniqueConstraint("conversation_id", "item_idx"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    item_idx: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    live_transcript: Mapped[str | None] = mapped_column(Text, default=None)
    post_call_transcript: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    voice_id: Mapped[str | None] = mapped_column(String(128), default=None)
    audio_speed: Mapped[float | None] = mapped_column(Float, default=None)
    system_prompt: Mapped[str | None] = mapped_column(Text, default=None)
    tool_calls: Mapped[list[Any]] = mapped_column(default=list)


class KeyCheck(Base):
    """A value sealed with the database's secret key: a process with another key stops at
    start-up (``store/sealed.py`` ``check_key``)."""

    __tablename__ = "key_checks"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)


#: The sealed columns of this module (``tables_postcall.SEALED_COLUMNS`` has the others).
SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("agents", ("id",), "spec", ENDPOINT_HEADERS),
    SealedColumn("agent_versions", ("agent_id", "version_number"), "spec", ENDPOINT_HEADERS),
    SealedColumn("phone_numbers", ("id",), "sip", ("password",)),
    SealedColumn("phone_numbers", ("id",), "configuration_endpoint", ("headers.*",)),
    SealedColumn("tools", ("id",), "spec", TOOL_HEADERS),
    SealedColumn("conversations", ("id",), "config", ENDPOINT_HEADERS),
)
