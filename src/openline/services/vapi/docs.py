"""Stored Vapi documents (``tables_vapi``): create, read, list with Vapi's filters, replace,
delete. Every Vapi resource service stores its camelCase document through this."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain.errors import NotFound
from openline.services.principal import Principal
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.store.tables_vapi import VapiResource

#: Vapi's plain lists return at most this many (the spec's range is 0-1000).
MAX_LIMIT = 1000
KIND_NAMES = {"assistant": "Assistant", "squad": "Squad", "tool": "Tool",
              "phone-number": "Phone number", "file": "File", "block": "Block", "call": "Call"}


@dataclass(frozen=True)
class TimeFilter:
    """Vapi's ``createdAt*`` / ``updatedAt*`` bounds (timezone-aware)."""

    gt: datetime | None = None
    lt: datetime | None = None
    ge: datetime | None = None
    le: datetime | None = None

    def clauses(self, column: Any) -> list[ColumnElement[bool]]:
        """The bounds on ``column`` as clients see it: to the millisecond, as every
        ``createdAt`` is written, so that a time read from a resource selects it exactly
        (the column keeps microseconds; the bounds are moved to whole milliseconds)."""
        out: list[ColumnElement[bool]] = []
        if self.gt is not None:
            out.append(column >= _floor_ms(self.gt) + _MS)
        if self.lt is not None:
            out.append(column < _ceil_ms(self.lt))
        if self.ge is not None:
            out.append(column >= _ceil_ms(self.ge))
        if self.le is not None:
            out.append(column < _floor_ms(self.le) + _MS)
        return out


_MS = timedelta(milliseconds=1)


def _floor_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _ceil_ms(value: datetime) -> datetime:
    floor = _floor_ms(value)
    return floor if floor == value else floor + _MS


@dataclass(frozen=True)
class ListQuery:
    """A plain Vapi list: newest first, at most ``limit``, within the date bounds."""

    limit: int = 100
    created: TimeFilter = field(default_factory=TimeFilter)
    updated: TimeFilter = field(default_factory=TimeFilter)
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Doc:
    """One stored document with its identity and times."""

    id: str
    kind: str
    doc: dict[str, Any]
    link_id: str | None
    created_at: datetime
    updated_at: datetime


def _doc(row: VapiResource) -> Doc:
    return Doc(row.id, row.kind, dict(row.doc or {}), row.link_id, row.created_at,
               row.updated_at)


def new_id() -> str:
    """A Vapi-style resource ID (a plain UUID, as Vapi's are)."""
    return str(uuid.uuid4())


class VapiDocs:
    """The document store of one process."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, who: Principal, kind: str, doc: dict[str, Any], *,
                     doc_id: str | None = None, link_id: str | None = None) -> Doc:
        async with self.db.session() as s:
            return _doc(await self.insert(s, who, kind, doc, doc_id=doc_id, link_id=link_id))

    async def insert(self, s: AsyncSession, who: Principal, kind: str, doc: dict[str, Any], *,
                     doc_id: str | None = None, link_id: str | None = None) -> VapiResource:
        """Add a document inside the caller's session (with the rows it belongs with)."""
        now = utcnow()
        row = VapiResource(id=doc_id or new_id(), workspace_id=who.workspace_id, kind=kind,
                           doc=doc, link_id=link_id, created_at=now, updated_at=now)
        s.add(row)
        await s.flush()
        return row

    async def find(self, who: Principal, kind: str, doc_id: str) -> Doc | None:
        async with self.db.session() as s:
            row = await self.row(s, who, kind, doc_id)
            return _doc(row) if row is not None else None

    async def get(self, who: Principal, kind: str, doc_id: str) -> Doc:
        found = await self.find(who, kind, doc_id)
        if found is None:
            raise NotFound(f"{KIND_NAMES.get(kind, kind)} not found")
        return found

    async def row(self, s: AsyncSession, who: Principal, kind: str,
                  doc_id: str) -> VapiResource | None:
        row = await s.get(VapiResource, doc_id)
        if row is None or row.workspace_id != who.workspace_id or row.kind != kind:
            return None
        return row

    async def many(self, who: Principal, kind: str, doc_ids: Iterable[str]) -> dict[str, Doc]:
        wanted = list(dict.fromkeys(doc_ids))
        if not wanted:
            return {}
        async with self.db.session() as s:
            return await self.many_in(s, who, kind, wanted)

    async def many_in(self, s: AsyncSession, who: Principal, kind: str,
                      doc_ids: Sequence[str]) -> dict[str, Doc]:
        rows = await s.scalars(select(VapiResource).where(
            VapiResource.id.in_(doc_ids), VapiResource.workspace_id == who.workspace_id,
            VapiResource.kind == kind))
        return {r.id: _doc(r) for r in rows}

    async def list_all(self, who: Principal, kind: str, q: ListQuery) -> list[Doc]:
        async with self.db.session() as s:
            rows = await s.scalars(self.listing(who, kind, q))
            return [_doc(r) for r in rows]

    def listing(self, who: Principal, kind: str, q: ListQuery) -> Select[VapiResource]:
        r = VapiResource
        stmt = select(r).where(r.workspace_id == who.workspace_id, r.kind == kind,
                               *q.created.clauses(r.created_at), *q.updated.clauses(r.updated_at))
        if q.ids:
            stmt = stmt.where(r.id.in_(q.ids))
        return stmt.order_by(r.created_at.desc(), r.id.desc()).limit(q.limit)

    async def replace(self, who: Principal, kind: str, doc_id: str,
                      doc: dict[str, Any]) -> Doc:
        async with self.db.session() as s:
            row = await self.row(s, who, kind, doc_id)
            if row is None:
                raise NotFound(f"{KIND_NAMES.get(kind, kind)} not found")
            row.doc, row.updated_at = doc, utcnow()
            await s.flush()
            return _doc(row)

    async def delete(self, who: Principal, kind: str, doc_id: str) -> Doc:
        async with self.db.session() as s:
            row = await self.row(s, who, kind, doc_id)
            if row is None:
                raise NotFound(f"{KIND_NAMES.get(kind, kind)} not found")
            gone = _doc(row)
            await s.delete(row)
            return gone
