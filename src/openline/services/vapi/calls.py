"""Vapi calls over Openline conversations: list, get, rename, delete (``call_view`` renders).

A call's ID is its conversation's ID; its Vapi document (kind ``call``) holds what a Vapi
client sent (``name``, ``customer``, ...). Lists read the default project's conversations
through the (project, started_at, id) index, newest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain.conversation import Conversation
from openline.domain.errors import NotFound, ValidationFailed
from openline.domain.project import Ref
from openline.services import lookup, mapping
from openline.services.conversations import items_by_conversation
from openline.services.principal import Principal
from openline.services.recordings import RecordingLinks
from openline.services.vapi import call_view
from openline.services.vapi.docs import ListQuery, VapiDocs
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables_vapi import VapiResource
from openline.store.tables_vapi_live import VapiCall

KIND = "call"
_MAX_NAME = 40


@dataclass(frozen=True)
class CallQuery:
    """``GET /call``: the plain-list filters plus ``id``, ``assistantId``, ``phoneNumberId``."""

    page: ListQuery = field(default_factory=ListQuery)
    call_id: str | None = None
    assistant_id: str | None = None
    phone_number_id: str | None = None


@dataclass(frozen=True)
class Call:
    """A conversation and its Vapi document."""

    conversation: Conversation
    doc: dict[str, Any]
    recording_url: str | None
    #: the assistant's document (its ``artifactPlan`` labels the transcript)
    assistant: dict[str, Any] = field(default_factory=dict)
    #: the ``endedReason`` its live call recorded (``tables_vapi_live``), if any
    reason: str | None = None

    def json(self) -> dict[str, Any]:
        return call_view.call_json(self.conversation, self.doc,
                                   recording_url=self.recording_url,
                                   assistant=self.assistant, reason=self.reason)


class CallService:
    def __init__(self, db: Database, docs: VapiDocs, links: RecordingLinks) -> None:
        self.db, self.docs, self.links = db, docs, links

    async def list_all(self, who: Principal, q: CallQuery) -> list[Call]:
        async with self.db.session() as s:
            # the project comes with the rows (a round trip less than looking it up first)
            hits = (await s.execute(self._filtered(who.workspace_id, q))).all()
            if not hits:
                return []
            rows: list[t.Conversation] = [conv for conv, _ in hits]
            return await self._calls(s, who, hits[0][1], rows)

    def _filtered(self, workspace_id: str, q: CallQuery
                  ) -> Select[t.Conversation, t.Project]:
        c, p = t.Conversation, t.Project
        updated = func.coalesce(c.ended_at, c.started_at)
        stmt = select(c, p).join(p, p.id == c.project_id).where(
            p.workspace_id == workspace_id, p.name == lookup.DEFAULT_PROJECT,
            *q.page.created.clauses(c.started_at), *q.page.updated.clauses(updated))
        if q.call_id is not None:
            stmt = stmt.where(c.id == q.call_id)
        if q.assistant_id is not None:
            stmt = stmt.where(c.agent_id == q.assistant_id)
        if q.phone_number_id is not None:
            docs = select(VapiResource.id).where(
                VapiResource.kind == KIND,
                VapiResource.link_id == q.phone_number_id)
            stmt = stmt.where(c.id.in_(docs))
        return stmt.order_by(c.started_at.desc(), c.id.desc()).limit(q.page.limit)

    async def _calls(self, s: AsyncSession, who: Principal, proj: t.Project,
                     rows: Sequence[t.Conversation]) -> list[Call]:
        if not rows:
            return []
        conv_ids = [r.id for r in rows]
        items = await items_by_conversation(s, conv_ids)
        agents = sorted({r.agent_id for r in rows if r.agent_id})
        # one query for both kinds: every round trip to the database counts in a list
        found = await s.scalars(select(VapiResource).where(
            VapiResource.id.in_([*conv_ids, *agents]),
            VapiResource.workspace_id == who.workspace_id,
            VapiResource.kind.in_((KIND, "assistant"))))
        ended = await s.execute(select(VapiCall.id, VapiCall.ended_reason).where(
            VapiCall.id.in_(conv_ids), VapiCall.ended_reason.is_not(None)))
        reasons = {call_id: reason for call_id, reason in ended}
        docs: dict[str, VapiResource] = {}
        assistants: dict[str, VapiResource] = {}
        for row in found:
            (docs if row.kind == KIND else assistants)[row.id] = row
        workspace = Ref(who.workspace_id, who.workspace_name)
        out = []
        for r in rows:
            conv = mapping.conversation(r, workspace, proj, items[r.id], False)
            url = self.links.url(r.id, "wav") if r.recording_path else None
            assistant = dict(assistants[r.agent_id].doc or {}) \
                if r.agent_id in assistants else {}
            out.append(Call(conv, dict(docs[r.id].doc or {}) if r.id in docs else {}, url,
                            assistant, reasons.get(r.id)))
        return out

    async def _owned(self, s: AsyncSession, who: Principal,
                     call_id: str) -> tuple[t.Conversation, t.Project]:
        row = await s.get(t.Conversation, call_id)
        if row is None or row.workspace_id != who.workspace_id:
            raise NotFound("Call not found")
        proj = await s.get(t.Project, row.project_id)
        assert proj is not None  # FK guarantees it
        return row, proj

    async def get(self, who: Principal, call_id: str) -> Call:
        async with self.db.session() as s:
            row, proj = await self._owned(s, who, call_id)
            return (await self._calls(s, who, proj, [row]))[0]

    async def update(self, who: Principal, call_id: str, body: Mapping[str, Any]) -> Call:
        """``PATCH /call/{id}``: ``name`` is the only field Vapi lets a client change."""
        unknown = sorted(set(body) - {"name"})
        if unknown:
            raise ValidationFailed(f"property {unknown[0]} should not exist",
                                   {unknown[0]: "should not exist"})
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > _MAX_NAME):
            raise ValidationFailed(f"name must be a string of at most {_MAX_NAME} characters",
                                   {"name": f"at most {_MAX_NAME} characters"})
        async with self.db.session() as s:
            await self._owned(s, who, call_id)
            row = await self.docs.row(s, who, KIND, call_id)
            if row is None:
                await self.docs.insert(s, who, KIND, dict(body), doc_id=call_id,
                                       link_id=None)
            elif "name" in body:
                row.doc, row.updated_at = {**row.doc, "name": name}, t.utcnow()
        return await self.get(who, call_id)

    async def delete(self, who: Principal, call_id: str, body: Mapping[str, Any]) -> Call:
        """Delete the call, or every call in ``body["ids"]`` (all or nothing); returns the
        call of the path as it was. A call still running cannot be deleted."""
        extra = body.get("ids")
        if extra is not None and not (isinstance(extra, list)
                                      and all(isinstance(i, str) for i in extra)):
            raise ValidationFailed("ids must be a list of call IDs", {"ids": "list of IDs"})
        wanted = list(dict.fromkeys([call_id, *(extra or [])]))
        async with self.db.session() as s:
            owned = [await self._owned(s, who, i) for i in wanted]
            live = [row.id for row, _ in owned if row.ended_at is None]
            if live:
                raise ValidationFailed(f"Call {live[0]} is still in progress; end it first",
                                       {"id": "call in progress"})
            row, proj = owned[0]
            gone = (await self._calls(s, who, proj, [row]))[0]
            await s.execute(delete(t.ConversationItem)
                            .where(t.ConversationItem.conversation_id.in_(wanted)))
            await s.execute(delete(VapiResource).where(VapiResource.id.in_(wanted),
                                                       VapiResource.kind == KIND))
            await s.execute(delete(t.Conversation).where(t.Conversation.id.in_(wanted)))
        return gone
