"""What the web dashboard needs beyond the API's own services: browser sessions, one-time
login links, agent versions, live conversations, per-conversation webhook deliveries and
resending them, and the stored stage timings of each turn.

Every write the dashboard makes to agents, tools, keys and the rest goes through the
same services as the REST API (``AgentService``, ``AuthService``, ...); this module only
adds what the API has no route for.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, delete, or_, select

from openline.domain.errors import NotFound, Unauthorized
from openline.domain.events import EVENT_KINDS, ConversationTransferred, WebhookDelivery
from openline.services import lookup, mapping
from openline.services.auth import AuthService, hash_secret
from openline.services.principal import Principal
from openline.services.webhooks import DELIVER_JOB, WebhookService
from openline.store import tables as t
from openline.store import tables_dashboard as td
from openline.store import tables_postcall as tp
from openline.store.db import Database
from openline.store.tables import utcnow

#: how long a browser stays signed in, and how long a login link may wait to be used
SESSION_TTL = timedelta(hours=12)
LINK_TTL = timedelta(minutes=15)
MAX_LISTED = 100


@dataclass(frozen=True)
class SignedIn:
    """A new browser session: the cookie's secret, its CSRF token, who it is."""

    token: str
    csrf_token: str
    who: Principal


@dataclass(frozen=True)
class BrowserSession:
    """A valid session found from its cookie."""

    who: Principal
    csrf_token: str


@dataclass(frozen=True)
class AgentVersion:
    version_number: int
    created_at: datetime
    spec: dict[str, Any]


class DashboardService:
    """Sessions and the dashboard's read models (workspace-scoped like every service)."""

    def __init__(self, db: Database, auth: AuthService,
                 webhooks: WebhookService | None = None) -> None:
        """``webhooks`` is needed only to resend deliveries (the CLI makes login links
        without it)."""
        self.db, self.auth, self.webhooks = db, auth, webhooks

    # --- signing in ---------------------------------------------------------------------

    async def sign_in(self, api_key: str) -> SignedIn:
        """A session for an API key (401 for anything else, tokens included)."""
        who = await self.auth.authenticate(api_key.strip() or None)
        if not who.is_api_key:
            raise Unauthorized("Sign in with an API key")
        async with self.db.session() as s:
            key_id = await s.scalar(select(t.ApiKey.id).where(
                t.ApiKey.key_hash == hash_secret(api_key.strip())))
        return await self._open(who, key_id)

    async def _open(self, who: Principal, key_id: str | None) -> SignedIn:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        async with self.db.session() as s:
            await s.execute(delete(td.DashboardSession)
                            .where(td.DashboardSession.expires_at < now))
            s.add(td.DashboardSession(token_hash=hash_secret(token), workspace_id=who.workspace_id,
                                      api_key_id=key_id, csrf_token=csrf,
                                      expires_at=now + SESSION_TTL))
        return SignedIn(token, csrf, who)

    async def resolve(self, token: str | None) -> BrowserSession | None:
        """The session of a cookie; ``None`` when unknown, expired, or its key revoked."""
        if not token:
            return None
        async with self.db.session() as s:
            hit = (await s.execute(
                select(td.DashboardSession, t.Workspace)
                .join(t.Workspace, t.Workspace.id == td.DashboardSession.workspace_id)
                .where(td.DashboardSession.token_hash == hash_secret(token),
                       td.DashboardSession.expires_at > utcnow()))).first()
            if hit is None:
                return None
            row, ws = hit
            if row.api_key_id is not None:
                key = await s.get(t.ApiKey, row.api_key_id)
                if key is None or key.revoked_at is not None:
                    return None
        return BrowserSession(Principal(ws.id, ws.name), row.csrf_token)

    async def sign_out(self, token: str | None) -> None:
        if token:
            async with self.db.session() as s:
                await s.execute(delete(td.DashboardSession)
                                .where(td.DashboardSession.token_hash == hash_secret(token)))

    async def create_login_link(self, workspace_id: str, api_key_id: str) -> str:
        """A one-time sign-in secret for a stored key, valid for ``LINK_TTL``."""
        token = "ol_login_" + secrets.token_urlsafe(32)
        async with self.db.session() as s:
            key = await s.get(t.ApiKey, api_key_id)
            if key is None or key.workspace_id != workspace_id or key.revoked_at is not None:
                raise NotFound("API key not found")
            s.add(td.DashboardLoginLink(token_hash=hash_secret(token), workspace_id=workspace_id,
                                        api_key_id=api_key_id, expires_at=utcnow() + LINK_TTL))
        return token

    async def redeem_link(self, token: str) -> SignedIn:
        """Sign in with a login link; it works once."""
        async with self.db.session() as s:
            hit = (await s.execute(
                select(td.DashboardLoginLink, t.Workspace, t.ApiKey)
                .join(t.Workspace, t.Workspace.id == td.DashboardLoginLink.workspace_id)
                .join(t.ApiKey, t.ApiKey.id == td.DashboardLoginLink.api_key_id)
                .where(td.DashboardLoginLink.token_hash == hash_secret(token)))).first()
            if hit is None or hit[0].used_at is not None or hit[0].expires_at <= utcnow() \
                    or hit[2].revoked_at is not None:
                raise Unauthorized("This login link is invalid, used or expired")
            link, ws, key = hit
            link.used_at = utcnow()
        return await self._open(Principal(ws.id, ws.name), key.id)

    # --- read models --------------------------------------------------------------------

    async def agent_versions(self, who: Principal, project: str | None,
                             name_or_id: str) -> list[AgentVersion]:
        """Every stored version of an agent, newest first."""
        async with self.db.session() as s:
            row, _ = await lookup.agent(s, who.workspace_id, project, name_or_id)
            rows = await s.scalars(select(t.AgentVersion).where(t.AgentVersion.agent_id == row.id)
                                   .order_by(t.AgentVersion.version_number.desc())
                                   .limit(MAX_LISTED))
            return [AgentVersion(v.version_number, v.created_at, dict(v.spec)) for v in rows]

    async def live_ids(self, who: Principal, project: str | None) -> list[str]:
        """The conversations of a project still in progress, newest first."""
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            c = t.Conversation
            return list(await s.scalars(
                select(c.id).where(c.project_id == proj.id, c.ended_at.is_(None))
                .order_by(c.started_at.desc()).limit(MAX_LISTED)))

    async def stage_timings(self, who: Principal, conversation_id: str) -> list[dict[str, float]]:
        """Each turn's stage breakdown (empty for conversations stored without one)."""
        async with self.db.session() as s:
            conv = await s.get(t.Conversation, conversation_id)
            if conv is None or conv.workspace_id != who.workspace_id:
                raise NotFound("Conversation not found")
            row = await s.get(td.ConversationStageTimings, conversation_id)
        return [dict(turn) for turn in (row.turns if row else [])
                if isinstance(turn, dict)]

    async def deliveries_for(self, who: Principal, conversation_id: str
                             ) -> list[tuple[str, WebhookDelivery]]:
        """(endpoint URL, attempt) for every webhook delivery about one conversation."""
        async with self.db.session() as s:
            conv = await s.get(t.Conversation, conversation_id)
            if conv is None or conv.workspace_id != who.workspace_id:
                raise NotFound("Conversation not found")
            endpoints = list(await s.scalars(select(tp.WebhookEndpoint.id).where(
                tp.WebhookEndpoint.workspace_id == who.workspace_id)))
            if not endpoints:
                return []
            payloads = list(await s.scalars(select(tp.Job.payload).where(
                tp.Job.kind == DELIVER_JOB, _about(endpoints, conversation_id))))
            message_ids = {str(p.get("message_id")) for p in payloads if isinstance(p, dict)}
            if not message_ids:
                return []
            # Resent messages keep their id, so their attempts are found here too.
            rows = (await s.execute(
                select(tp.WebhookDelivery, tp.WebhookEndpoint.url)
                .join(tp.WebhookEndpoint, tp.WebhookEndpoint.id == tp.WebhookDelivery.endpoint_id)
                .where(tp.WebhookDelivery.message_id.in_(message_ids),
                       tp.WebhookEndpoint.workspace_id == who.workspace_id)
                .order_by(tp.WebhookDelivery.created_at)
                .limit(MAX_LISTED))).all()
        return [(url, mapping.webhook_delivery(d)) for d, url in rows]

    async def resend(self, who: Principal, endpoint_id: str, message_id: str) -> None:
        """Queue a message to its endpoint again (same message id, so receivers that
        de-duplicate on it see one message), whatever became of earlier attempts."""
        assert self.webhooks is not None, "built without the webhook service"
        await self.webhooks.get(who, endpoint_id)  # 404 outside the workspace
        async with self.db.session() as s:
            payloads = list(await s.scalars(select(tp.Job.payload).where(
                tp.Job.kind == DELIVER_JOB, cast(tp.Job.payload, String).contains(message_id))))
        payload = next((p for p in payloads if p.get("message_id") == message_id
                        and p.get("endpoint_id") == endpoint_id), None)
        if payload is None:
            raise NotFound("Webhook message not found")
        await self.webhooks.queue.enqueue(DELIVER_JOB, dict(payload),
                                          max_attempts=self.webhooks.options.max_attempts)


def _about(endpoint_ids: list[str], conversation_id: str) -> ColumnElement[bool]:
    """Webhook jobs about one conversation, found through their unique ``dedupe_key``
    (``webhook:<endpoint>:<event>:<occurrence>``, the occurrence starting with the
    conversation id), so the lookup uses its index instead of reading every payload."""
    key = tp.Job.dedupe_key
    exact = [f"webhook:{e}:{kind}:{conversation_id}" for e in endpoint_ids
             for kind in EVENT_KINDS]
    # A transfer's occurrence is "<conversation>:<number>:<items>": a range of keys.
    ranges = [and_(key >= f"webhook:{e}:{ConversationTransferred.kind}:{conversation_id}:",
                   key < f"webhook:{e}:{ConversationTransferred.kind}:{conversation_id};")
              for e in endpoint_ids]
    return or_(key.in_(exact), *ranges)
