"""Reading and deleting stored conversations: filters and cursor pagination."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, delete, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain.conversation import Conversation
from openline.domain.errors import Conflict, NotFound, ValidationFailed
from openline.domain.project import Ref
from openline.services import lookup, mapping
from openline.services.commands import ListConversations
from openline.services.principal import Principal
from openline.store import tables as t
from openline.store import tables_phonic as tph
from openline.store.db import Database


@dataclass(frozen=True)
class ConversationPage:
    """One page of a listing, newest first, with the cursors around it."""

    conversations: list[Conversation]
    prev_cursor: str | None
    next_cursor: str | None
    #: set when ``external_id`` matched exactly one conversation
    single: Conversation | None = None


class ConversationService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_all(self, who: Principal, q: ListConversations) -> ConversationPage:
        if q.before and q.after:
            raise ValidationFailed("Cannot use both before and after",
                                   {"before": "cannot be combined with after"})
        if not 1 <= q.limit <= 100:
            raise ValidationFailed("Invalid limit", {"limit": "must be between 1 and 100"})
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, q.project)
            stmt = self._filtered(proj.id, q)
            cursor_id = q.before or q.after
            if cursor_id:
                cursor = await s.get(t.Conversation, cursor_id)
                if cursor is None or cursor.project_id != proj.id:
                    raise NotFound("Conversation not found")
                rows, prev_c, next_c = await self._page_from(s, stmt, cursor, q)
            else:
                rows = list(await s.scalars(_newest_first(stmt).limit(q.limit + 1)))
                more = len(rows) > q.limit
                rows = rows[: q.limit]
                prev_c, next_c = None, (rows[-1].id if more and rows else None)
            if q.external_id is not None and not rows and not cursor_id:
                raise NotFound("Conversation not found")
            views = await self._domain(s, _workspace(who), proj, rows)
        single = views[0] if q.external_id is not None and len(views) == 1 and not (
            prev_c or next_c) else None
        return ConversationPage(views, prev_c, next_c, single)

    def _filtered(self, project_id: str, q: ListConversations) -> Select[t.Conversation]:
        c = t.Conversation
        stmt = select(c).where(c.project_id == project_id)
        if q.external_id is not None:
            stmt = stmt.where(c.external_id == q.external_id)
        if q.duration_min_s is not None:
            stmt = stmt.where(c.duration_ms >= q.duration_min_s * 1000)
        if q.duration_max_s is not None:
            stmt = stmt.where(c.duration_ms <= q.duration_max_s * 1000)
        if q.started_at_min is not None:
            stmt = stmt.where(c.started_at >= q.started_at_min)
        if q.started_at_max is not None:
            stmt = stmt.where(c.started_at <= q.started_at_max)
        return stmt

    async def _page_from(
        self, s: AsyncSession, stmt: Select[t.Conversation], cursor: t.Conversation,
        q: ListConversations,
    ) -> tuple[list[t.Conversation], str | None, str | None]:
        c = t.Conversation
        # Row-value comparisons let both databases seek into the (project, started_at, id)
        # index at the cursor; the OR form scanned from the newest row on every page.
        position = tuple_(c.started_at, c.id)
        at_cursor = tuple_(literal(cursor.started_at, t.UTCDateTime()), literal(cursor.id))
        if q.after:
            older = position < at_cursor
            rows = list(await s.scalars(_newest_first(stmt.where(older)).limit(q.limit + 1)))
            more = len(rows) > q.limit
            rows = rows[: q.limit]
            return rows, (rows[0].id if rows else None), (rows[-1].id if more and rows else None)
        newer = position > at_cursor
        asc = stmt.where(newer).order_by(c.started_at.asc(), c.id.asc()).limit(q.limit + 1)
        rows = list(await s.scalars(asc))
        more = len(rows) > q.limit
        rows = list(reversed(rows[: q.limit]))
        return rows, (rows[0].id if more and rows else None), (rows[-1].id if rows else None)

    async def _domain(
        self, s: AsyncSession, workspace: Ref, proj: t.Project, rows: list[t.Conversation]
    ) -> list[Conversation]:
        if not rows:
            return []
        conv_ids = [r.id for r in rows]
        items = await items_by_conversation(s, conv_ids)
        agent_ids = {r.agent_id for r in rows if r.agent_id}
        alive = set(await s.scalars(select(t.Agent.id).where(t.Agent.id.in_(agent_ids)))) \
            if agent_ids else set()
        retention = {r.conversation_id: r for r in await s.scalars(
            select(tph.ConversationRetention).where(
                tph.ConversationRetention.conversation_id.in_(conv_ids)))}
        return [mapping.conversation(r, workspace, proj, items[r.id],
                                     bool(r.agent_id) and r.agent_id not in alive,
                                     retention.get(r.id))
                for r in rows]

    async def get(self, who: Principal, conversation_id: str) -> Conversation:
        async with self.db.session() as s:
            row, proj = await self._owned(s, who, conversation_id)
            return (await self._domain(s, _workspace(who), proj, [row]))[0]

    async def load(self, conversation_id: str) -> Conversation | None:
        """A conversation by ID, whoever owns it (for post-call work, not for callers)."""
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            if row is None:
                return None
            workspace = await s.get(t.Workspace, row.workspace_id)
            proj = await s.get(t.Project, row.project_id)
            assert proj is not None  # FK guarantees it
            ref = Ref(row.workspace_id, workspace.name if workspace else "")
            return (await self._domain(s, ref, proj, [row]))[0]

    async def recording_path(self, conversation_id: str) -> str | None:
        """Where a conversation's recording is stored (signed links are their own credential)."""
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
        return row.recording_path if row is not None else None

    async def _owned(
        self, s: AsyncSession, who: Principal, conversation_id: str
    ) -> tuple[t.Conversation, t.Project]:
        row = await s.get(t.Conversation, conversation_id)
        if row is None or row.workspace_id != who.workspace_id or (
            who.conversation_ids and conversation_id not in who.conversation_ids
        ):
            raise NotFound("Conversation not found")
        proj = await s.get(t.Project, row.project_id)
        assert proj is not None  # FK guarantees it
        return row, proj

    async def delete(self, who: Principal, conversation_id: str) -> Conversation:
        """Delete a finished conversation; returns it as it was (the recording stays)."""
        async with self.db.session() as s:
            row, proj = await self._owned(s, who, conversation_id)
            if row.ended_at is None:
                raise Conflict("Cannot delete an active conversation")
            gone = (await self._domain(s, _workspace(who), proj, [row]))[0]
            await s.execute(delete(t.ConversationItem)
                            .where(t.ConversationItem.conversation_id == row.id))
            await s.delete(row)
            return gone

    async def require_ended(self, who: Principal, conversation_id: str) -> Conversation:
        """For post-call endpoints: 404 when unknown, 409 while live."""
        conversation = await self.get(who, conversation_id)
        if conversation.is_live:
            raise Conflict("Conversation is still live")
        return conversation


def _newest_first(stmt: Select[t.Conversation]) -> Select[t.Conversation]:
    return stmt.order_by(t.Conversation.started_at.desc(), t.Conversation.id.desc())


def _workspace(who: Principal) -> Ref:
    return Ref(who.workspace_id, who.workspace_name)


async def items_by_conversation(s: AsyncSession, conv_ids: Sequence[str]
                                ) -> dict[str, list[t.ConversationItem]]:
    """The stored items of these conversations, in order, in one query (every conversation
    id is a key, with no items when it has none)."""
    items: dict[str, list[t.ConversationItem]] = {i: [] for i in conv_ids}
    for item in await s.scalars(
        select(t.ConversationItem).where(t.ConversationItem.conversation_id.in_(conv_ids))
        .order_by(t.ConversationItem.conversation_id, t.ConversationItem.item_idx)
    ):
        items[item.conversation_id].append(item)
    return items
