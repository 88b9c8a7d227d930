"""Workspaces, API keys (stored hashed) and short-lived tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain import ids
from openline.domain.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from openline.services.call_setup import workspace_limit
from openline.services.principal import CredentialKind, Principal
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow

DEFAULT_WORKSPACE = "default"
DEFAULT_PROJECT = "main"
SESSION_TTL = (60, 3600, 300)  # min, max, default seconds
CONVERSATION_TTL = (30, 60, 30)


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret; enough for random keys (no password stretching)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class NewKey:
    id: str
    name: str
    secret: str


@dataclass(frozen=True)
class NewToken:
    token: str
    expires_at: datetime


WORKSPACE_LIST_FIELDS = ("invite_link_allowed_domains", "ip_allowlist")


class _KeyAdmin:
    """Key rename/rotate and workspace settings (mixed into AuthService below)."""

    db: Database
    default_max_active: int

    async def _live_key(self, s: AsyncSession, workspace_id: str, key_id: str) -> t.ApiKey:
        row = await s.get(t.ApiKey, key_id)
        if row is None or row.workspace_id != workspace_id or row.revoked_at is not None:
            raise NotFound("API key not found")
        return row

    async def rename_key(self, workspace_id: str, key_id: str, name: str) -> None:
        async with self.db.session() as s:
            (await self._live_key(s, workspace_id, key_id)).name = name.strip()

    async def rotate_key(self, workspace_id: str, key_id: str) -> NewKey:
        """Replace the key's secret; the old one stops working at once."""
        secret = _new_secret("ol")
        async with self.db.session() as s:
            row = await self._live_key(s, workspace_id, key_id)
            row.key_hash, row.prefix = hash_secret(secret), secret[:7]
            return NewKey(row.id, row.name, secret)

    async def workspace_info(self, workspace_id: str) -> dict[str, Any]:
        async with self.db.session() as s:
            ws = await s.get(t.Workspace, workspace_id)
            active = await s.scalar(
                select(func.count()).select_from(t.Conversation)
                .where(t.Conversation.workspace_id == workspace_id,
                       t.Conversation.ended_at.is_(None))
            )
        assert ws is not None
        settings = ws.settings or {}
        return {
            "active_conversations": int(active or 0),
            "max_active_conversations": workspace_limit(ws, self.default_max_active),
            "logo_url": settings.get("logo_url"),
            "invite_link_allowed_domains": settings.get("invite_link_allowed_domains", []),
            "ip_allowlist": settings.get("ip_allowlist", []),
        }

    async def update_workspace(self, workspace_id: str, body: dict[str, Any]) -> None:
        errors: dict[str, str] = {}
        logo = body.get("logo_url")
        if "logo_url" in body and logo is not None and not isinstance(logo, str):
            errors["logo_url"] = "must be a URL string or null"
        for field in WORKSPACE_LIST_FIELDS:
            value = body.get(field)
            if field in body and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
                errors[field] = "must be a list of strings"
        if errors:
            raise ValidationFailed("Invalid parameters", errors)
        async with self.db.session() as s:
            ws = await s.get(t.Workspace, workspace_id)
            assert ws is not None
            keep = ("logo_url", *WORKSPACE_LIST_FIELDS)
            ws.settings = {**(ws.settings or {}), **{k: body[k] for k in keep if k in body}}


class AuthService(_KeyAdmin):
    """Authenticates callers and manages credentials."""

    def __init__(self, db: Database, static_keys: tuple[str, ...] = (), *,
                 default_max_active: int = 100) -> None:
        self.db = db
        self.default_max_active = default_max_active  # a workspace without its own limit
        self._static_hashes = {hash_secret(k) for k in static_keys if k}
        self._static_principal: Principal | None = None

    async def bootstrap(self) -> NewKey | None:
        """First start: workspace ``default``, project ``main`` and one API key (returned once).

        Returns ``None`` when the workspace already exists.
        """
        try:
            async with self.db.session() as s:
                found = await s.scalar(
                    select(t.Workspace).where(t.Workspace.name == DEFAULT_WORKSPACE))
                if found is not None:
                    return None
                ws = t.Workspace(id=ids.new_id(ids.WORKSPACE), name=DEFAULT_WORKSPACE,
                                 settings={})
                s.add(ws)
                await s.flush()  # no ORM relationships, so parents are flushed explicitly
                s.add(t.Project(id=ids.new_id(ids.PROJECT), workspace_id=ws.id,
                                name=DEFAULT_PROJECT))
                await s.flush()
                key = self._add_key(s, ws.id, "bootstrap")
        except IntegrityError:
            # Another node starting at the same moment created it first (unique name): its
            # transaction committed, ours rolled back whole.
            return None
        return key

    def _add_key(self, s: AsyncSession, workspace_id: str, name: str) -> NewKey:
        secret = _new_secret("ol")
        row = t.ApiKey(
            id=ids.new_id(ids.API_KEY), workspace_id=workspace_id, name=name,
            key_hash=hash_secret(secret), prefix=secret[:7],
        )
        s.add(row)
        return NewKey(id=row.id, name=name, secret=secret)

    async def default_workspace(self) -> t.Workspace:
        async with self.db.session() as s:
            ws = await s.scalar(select(t.Workspace).where(t.Workspace.name == DEFAULT_WORKSPACE))
        if ws is None:
            raise NotFound("Workspace not found")
        return ws

    async def authenticate(self, credential: str | None) -> Principal:
        """Resolve an API key, session token or conversation token; 401 otherwise."""
        if not credential:
            raise Unauthorized("Missing API key. Use 'Authorization: Bearer <key>'.")
        digest = hash_secret(credential)
        if digest in self._static_hashes:
            if self._static_principal is None:  # the workspace never changes: look it up once
                ws = await self.default_workspace()
                self._static_principal = Principal(ws.id, ws.name)
            return self._static_principal
        async with self.db.session() as s:
            row = await s.execute(
                select(t.ApiKey, t.Workspace)
                .join(t.Workspace, t.Workspace.id == t.ApiKey.workspace_id)
                .where(t.ApiKey.key_hash == digest, t.ApiKey.revoked_at.is_(None))
            )
            hit = row.first()
            if hit is not None:
                return Principal(hit[1].id, hit[1].name)
            tok = await s.execute(
                select(t.AuthToken, t.Workspace)
                .join(t.Workspace, t.Workspace.id == t.AuthToken.workspace_id)
                .where(t.AuthToken.token_hash == digest, t.AuthToken.expires_at > utcnow())
            )
            token_hit = tok.first()
        if token_hit is None:
            raise Unauthorized("Invalid API key")
        token, ws = token_hit
        kind: CredentialKind = (
            "session_token" if token.kind == "session" else "conversation_token"
        )
        return Principal(
            ws.id, ws.name, kind=kind, agent_id=token.agent_id,
            conversation_ids=frozenset(token.conversation_ids or ()),
        )

    async def create_key(self, workspace_id: str, name: str) -> NewKey:
        if not name.strip():
            raise ValidationFailed("Invalid parameters", {"name": "must not be empty"})
        async with self.db.session() as s:
            return self._add_key(s, workspace_id, name.strip())

    async def list_keys(self, workspace_id: str) -> list[t.ApiKey]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(t.ApiKey).where(t.ApiKey.workspace_id == workspace_id)
                .order_by(t.ApiKey.created_at)
            )
            return list(rows)

    async def revoke_key(self, workspace_id: str, key_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(t.ApiKey, key_id)
            if row is None or row.workspace_id != workspace_id or row.revoked_at is not None:
                raise NotFound("API key not found")
            row.revoked_at = utcnow()

    async def create_session_token(
        self, who: Principal, ttl_seconds: int | None, conversation_ids: list[str] | None
    ) -> NewToken:
        if not who.is_api_key:
            raise Forbidden("Only API keys can be used to create session tokens")
        ttl = _check_ttl(ttl_seconds, SESSION_TTL)
        return await self._mint(who, "session", "ph_session", ttl, None, conversation_ids)

    async def create_conversation_token(
        self, who: Principal, agent_id: str, ttl_seconds: int | None
    ) -> NewToken:
        if not who.is_api_key:
            raise Forbidden("Only API keys can be used to create conversation tokens")
        ttl = _check_ttl(ttl_seconds, CONVERSATION_TTL)
        async with self.db.session() as s:
            agent = await s.get(t.Agent, agent_id)
            project = await s.get(t.Project, agent.project_id) if agent else None
        if agent is None or project is None or project.workspace_id != who.workspace_id:
            raise NotFound("Agent not found")
        return await self._mint(who, "conversation", "ph_conversation", ttl, agent_id, None)

    async def _mint(
        self, who: Principal, kind: str, prefix: str, ttl: int,
        agent_id: str | None, conversation_ids: list[str] | None,
    ) -> NewToken:
        secret = _new_secret(prefix)
        expires = utcnow() + timedelta(seconds=ttl)
        async with self.db.session() as s:
            s.add(t.AuthToken(
                id=ids.new_id("tok"), workspace_id=who.workspace_id, kind=kind,
                token_hash=hash_secret(secret), agent_id=agent_id,
                conversation_ids=list(conversation_ids) if conversation_ids else None,
                expires_at=expires,
            ))
        return NewToken(secret, expires)


def _check_ttl(value: int | None, bounds: tuple[int, int, int]) -> int:
    low, high, default = bounds
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailed(
            f"ttl_seconds must be between {low} and {high}",
            {"ttl_seconds": f"must be an integer between {low} and {high}"},
        )
    return value

