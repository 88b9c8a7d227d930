"""``POST /analytics``: Vapi's analytics queries over calls (spec §5.11).

Each query picks the calls of the default project in its time range, groups them by the
``groupBy`` columns (and ``timeRange.step`` buckets in its ``timezone``), and computes the
aliased aggregates. Openline charges nothing, so cost columns are 0; ``duration`` is in
seconds and ``minutesUsed`` in minutes. ``subscription`` queries answer with no rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from openline.domain.errors import ValidationFailed
from openline.domain.validation import check_timezone, first_error_message
from openline.services import lookup
from openline.services.principal import Principal
from openline.services.vapi import call_view
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables_vapi import VapiResource

OPERATIONS = ("sum", "avg", "count", "min", "max", "history")
COLUMNS = ("id", "cost", "costBreakdown.llm", "costBreakdown.stt", "costBreakdown.tts",
           "costBreakdown.vapi", "costBreakdown.transport",
           "costBreakdown.analysisBreakdown.summary", "costBreakdown.transcriber",
           "costBreakdown.ttsCharacters", "costBreakdown.llmPromptTokens",
           "costBreakdown.llmCompletionTokens", "costBreakdown.llmCachedPromptTokens",
           "duration", "concurrency", "minutesUsed")
GROUP_BY = ("type", "assistantId", "endedReason", "analysis.successEvaluation", "status")
STEPS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year", "decade",
         "century", "millennium")
#: At most this many calls are read per query (a time range bounds the rest).
MAX_CALLS = 200_000
_MAX_QUERIES = 20


@dataclass(frozen=True)
class CallFacts:
    """What a query may group or aggregate by, for one call."""

    started_at: datetime
    values: dict[str, Any]


def _alias(op: Mapping[str, Any]) -> str:
    if isinstance(op.get("alias"), str) and op["alias"]:
        return str(op["alias"])
    column = str(op["column"]).split(".")[-1]
    return f"{op['operation']}{column[:1].upper()}{column[1:]}"


def check_queries(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    queries = body.get("queries")
    errors: dict[str, str] = {}
    if isinstance(queries, list):
        queries = [dict(q) if isinstance(q, dict) else q for q in queries]
    if not isinstance(queries, list) or not queries:
        raise ValidationFailed("queries must be a non-empty list", {"queries": "required"})
    if len(queries) > _MAX_QUERIES:
        raise ValidationFailed(f"at most {_MAX_QUERIES} queries", {"queries": "too many"})
    for i, q in enumerate(queries):
        where = f"queries.{i}"
        if not isinstance(q, dict):
            errors[where] = "must be an object"
            continue
        q.setdefault("table", "call")  # older SDKs send no table: calls are the default
        if q.get("table") not in ("call", "subscription"):
            errors[f"{where}.table"] = "table must be call or subscription"
        if not isinstance(q.get("name"), str) or not q["name"]:
            errors[f"{where}.name"] = "name is required"
        ops = q.get("operations")
        if not isinstance(ops, list) or not ops:
            errors[f"{where}.operations"] = "operations must be a non-empty list"
        else:
            for j, op in enumerate(ops):
                if not isinstance(op, dict) or op.get("operation") not in OPERATIONS \
                        or op.get("column") not in COLUMNS:
                    errors[f"{where}.operations.{j}"] = (
                        "operation must be one of " + ", ".join(OPERATIONS)
                        + " and column one of " + ", ".join(COLUMNS))
        group = q.get("groupBy") or []
        if not isinstance(group, list) or any(g not in GROUP_BY for g in group):
            errors[f"{where}.groupBy"] = "groupBy items must be among " + ", ".join(GROUP_BY)
        errors.update(_range_errors(q.get("timeRange"), where))
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)
    return queries


def _range_errors(time_range: Any, where: str) -> dict[str, str]:
    if time_range is None:
        return {}
    if not isinstance(time_range, dict):
        return {f"{where}.timeRange": "must be an object"}
    errors: dict[str, str] = {}
    if time_range.get("step") is not None and time_range["step"] not in STEPS:
        errors[f"{where}.timeRange.step"] = "step must be one of " + ", ".join(STEPS)
    if time_range.get("timezone") is not None:
        try:
            check_timezone(str(time_range["timezone"]))
        except ValueError as exc:
            errors[f"{where}.timeRange.timezone"] = str(exc)
    for key in ("start", "end"):
        if time_range.get(key) is not None:
            try:
                _parse(str(time_range[key]))
            except ValueError:
                errors[f"{where}.timeRange.{key}"] = f"{key} must be an ISO 8601 date"
    return errors


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _bucket(at: datetime, step: str, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    starts: dict[str, Callable[[datetime], datetime]] = {
        "second": lambda d: d.replace(microsecond=0),
        "minute": lambda d: d.replace(second=0, microsecond=0),
        "hour": lambda d: d.replace(minute=0, second=0, microsecond=0),
        "day": lambda d: d.replace(hour=0, minute=0, second=0, microsecond=0),
        "week": lambda d: (d - timedelta(days=d.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0),
        "month": lambda d: d.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        "quarter": lambda d: d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1, hour=0,
                                       minute=0, second=0, microsecond=0),
        "year": lambda d: d.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0),
        "decade": lambda d: d.replace(year=d.year // 10 * 10, month=1, day=1, hour=0,
                                      minute=0, second=0, microsecond=0),
        "century": lambda d: d.replace(year=d.year // 100 * 100 or 1, month=1, day=1, hour=0,
                                       minute=0, second=0, microsecond=0),
        "millennium": lambda d: d.replace(year=d.year // 1000 * 1000 or 1, month=1, day=1,
                                          hour=0, minute=0, second=0, microsecond=0),
    }
    return starts[step](local).isoformat()


def _aggregate(op: str, column: str, calls: list[CallFacts]) -> Any:
    values = [c.values.get(column, 0) for c in calls]
    if op == "count":
        return len(calls)
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    if op == "history":
        return numbers
    if not numbers:
        return 0 if op == "sum" else None
    if op == "sum":
        return sum(numbers)
    if op == "avg":
        return sum(numbers) / len(numbers)
    return min(numbers) if op == "min" else max(numbers)


class AnalyticsService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _facts(self, who: Principal, start: datetime, end: datetime) -> list[CallFacts]:
        c = t.Conversation
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, None)
            rows = (await s.execute(
                select(c.id, c.agent_id, c.origin, c.call_info, c.ended_by, c.ended_at,
                       c.started_at, c.duration_ms)
                .where(c.project_id == proj.id, c.started_at >= start, c.started_at <= end)
                .order_by(c.started_at).limit(MAX_CALLS))).all()
            types: dict[str, Any] = dict((await s.execute(
                select(VapiResource.id, VapiResource.doc).where(
                    VapiResource.kind == "call",
                    VapiResource.workspace_id == who.workspace_id,
                    VapiResource.created_at >= start - timedelta(minutes=5)))).all())
        facts = []
        for r in rows:
            doc = types.get(r.id) or {}
            seconds = (r.duration_ms or 0) / 1000
            facts.append(CallFacts(r.started_at, {
                "type": call_view.type_for(r.origin, r.call_info, doc),
                "assistantId": r.agent_id,
                "endedReason": call_view.ended_reason(r.ended_by, r.origin),
                "status": "ended" if r.ended_at else "in-progress",
                "analysis.successEvaluation": ((doc.get("analysis") or {})
                                               .get("successEvaluation")),
                "duration": seconds, "minutesUsed": seconds / 60, "concurrency": 1,
            }))
        return facts

    async def run(self, who: Principal, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        queries = check_queries(body)
        now = datetime.now(UTC)
        out = []
        for q in queries:
            time_range = dict(q.get("timeRange") or {})
            start = _parse(time_range["start"]) if time_range.get("start") \
                else now - timedelta(days=7)
            end = _parse(time_range["end"]) if time_range.get("end") else now
            effective = {**time_range, "start": call_view.iso(start), "end": call_view.iso(end),
                         "timezone": time_range.get("timezone") or "UTC"}
            if q["table"] == "subscription":
                out.append({"name": q["name"], "timeRange": effective, "result": []})
                continue
            facts = await self._facts(who, start, end)
            out.append({"name": q["name"], "timeRange": effective,
                        "result": _rows(q, facts, effective)})
        return out


def _rows(q: Mapping[str, Any], facts: list[CallFacts],
          time_range: Mapping[str, Any]) -> list[dict[str, Any]]:
    group_by = list(q.get("groupBy") or [])
    step = time_range.get("step")
    zone = ZoneInfo(str(time_range.get("timezone") or "UTC"))
    groups: dict[tuple[Any, ...], list[CallFacts]] = {}
    for fact in facts:
        key = tuple(fact.values.get(g) for g in group_by)
        if step:
            key = (_bucket(fact.started_at, str(step), zone), *key)
        groups.setdefault(key, []).append(fact)
    if not groups and not group_by and not step:
        groups[()] = []  # an ungrouped query always answers one row (count 0)
    rows = []
    for key, calls in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        row: dict[str, Any] = {}
        values = list(key)
        if step:
            row["date"] = values.pop(0)
        row.update(dict(zip(group_by, values, strict=True)))
        for op in q["operations"]:
            row[_alias(op)] = _aggregate(op["operation"], op["column"], calls)
        rows.append(row)
    return rows

