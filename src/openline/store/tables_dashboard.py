"""Dashboard tables: browser sessions, one-time login links, per-turn stage timings.

On the same ``Base`` as ``tables.py``; ``store/db.py`` and ``store/migrations/env.py``
import this module so the metadata knows them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from openline.store.tables import Base, utcnow


class DashboardSession(Base):
    """A signed-in browser. The cookie holds a random secret; only its hash is stored."""

    __tablename__ = "dashboard_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    #: the API key signed in with (``None``: a key from the server's configuration); a
    #: revoked key ends its sessions at once
    api_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), default=None)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class DashboardLoginLink(Base):
    """``openline keys create --dashboard``: a link that signs in once, for a short while."""

    __tablename__ = "dashboard_login_links"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class ConversationStageTimings(Base):
    """Each assistant turn's stage breakdown (endpointing, STT, LLM first token, TTS first
    audio, voice to voice), stored with the conversation's end."""

    __tablename__ = "conversation_stage_timings"
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    turns: Mapped[list[Any]] = mapped_column(default=list)
