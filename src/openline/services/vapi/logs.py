"""Vapi logs (SDK 0.1.0-0.8.1 ``/logs``): one ``API`` log per write request of the dialect.

Each POST, PATCH and DELETE of a Vapi route is recorded after its response (method, path,
query, status, duration and the IDs it named; request bodies with their secrets masked).
Reads are not logged, so listing cannot grow the log. At most ``MAX_LOGS`` are kept per
workspace: the oldest go first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from openline.domain.errors import ValidationFailed
from openline.services.principal import Principal
from openline.services.vapi.call_view import iso
from openline.services.vapi.docs import Doc, ListQuery, VapiDocs
from openline.store.db import Database
from openline.store.tables_vapi import VapiResource

KIND = "log"
MAX_LOGS = 10_000
LOG_TYPES = ("API", "Webhook", "Call", "Provider")
#: query parameters that select logs by the ID they name
ID_FILTERS = ("assistantId", "phoneNumberId", "customerId", "squadId", "callId")
_MASKED = ("twilioAuthToken", "twilioApiSecret", "password", "secret", "token",
           "serverUrlSecret", "authorization")


@dataclass(frozen=True)
class LogQuery:
    page: int = 1
    sort_desc: bool = True
    listing: ListQuery = field(default_factory=ListQuery)
    type: str | None = None
    webhook_type: str | None = None
    ids: Mapping[str, str] | None = None


def mask(value: Any) -> Any:
    """``value`` with every secret-looking key's value replaced by ``"***"``."""
    if isinstance(value, dict):
        return {k: ("***" if any(m in k.lower() for m in (x.lower() for x in _MASKED))
                    else mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


class LogService:
    def __init__(self, db: Database, docs: VapiDocs) -> None:
        self.db, self.docs = db, docs

    async def record(self, who: Principal, entry: dict[str, Any]) -> None:
        async with self.db.session() as s:
            await self.docs.insert(s, who, KIND, entry)
            count = await s.scalar(select(func.count()).where(
                VapiResource.workspace_id == who.workspace_id, VapiResource.kind == KIND))
            count = count or 0
            if count > MAX_LOGS:
                oldest = select(VapiResource.id).where(
                    VapiResource.workspace_id == who.workspace_id, VapiResource.kind == KIND
                ).order_by(VapiResource.created_at, VapiResource.id).limit(count - MAX_LOGS)
                await s.execute(delete(VapiResource).where(VapiResource.id.in_(oldest)))

    async def _matching(self, who: Principal, q: LogQuery) -> list[Doc]:
        listing = ListQuery(MAX_LOGS, q.listing.created, q.listing.updated)
        found = await self.docs.list_all(who, KIND, listing)
        return [d for d in found if _matches(d.doc, q)]

    async def list_page(self, who: Principal, q: LogQuery) -> dict[str, Any]:
        if q.page < 1:
            raise ValidationFailed("page must be at least 1", {"page": "at least 1"})
        found = await self._matching(who, q)
        if not q.sort_desc:
            found.reverse()
        size = q.listing.limit
        start = (q.page - 1) * size
        results = [log_json(d, who.workspace_id) for d in found[start:start + size]]
        return {"results": results, "metadata": {
            "itemsPerPage": size, "totalItems": len(found), "currentPage": q.page}}

    async def delete_matching(self, who: Principal, q: LogQuery) -> int:
        found = await self._matching(who, q)
        async with self.db.session() as s:
            ids = [d.id for d in found]
            for chunk in range(0, len(ids), 500):
                await s.execute(delete(VapiResource).where(
                    VapiResource.id.in_(ids[chunk:chunk + 500])))
        return len(found)


def _matches(doc: Mapping[str, Any], q: LogQuery) -> bool:
    if q.type is not None and doc.get("type") != q.type:
        return False
    if q.webhook_type is not None and doc.get("webhookType") != q.webhook_type:
        return False
    return all(doc.get(key) == value for key, value in (q.ids or {}).items())


def log_json(d: Doc, org_id: str) -> dict[str, Any]:
    out = dict(d.doc)
    out.update(id=d.id, orgId=org_id, createdAt=iso(d.created_at), updatedAt=iso(d.updated_at))
    out.setdefault("time", iso(d.created_at))
    return out


def api_log(method: str, path: str, query: str, status: int, started: datetime,
            finished: datetime, body: Any, ids: Mapping[str, str]) -> dict[str, Any]:
    """The ``Log`` of one API request."""
    resource = path.strip("/").split("/")[0] or "org"
    return {
        "type": "API", "resource": resource, "requestHttpMethod": method,
        "requestPath": path, "requestUrl": path + (f"?{query}" if query else ""),
        "requestQuery": query, "requestBody": mask(body), "responseHttpCode": status,
        "requestStartedAt": iso(started), "requestFinishedAt": iso(finished),
        "requestDurationSeconds": round((finished - started).total_seconds(), 4),
        "time": iso(finished), **dict(ids),
    }
