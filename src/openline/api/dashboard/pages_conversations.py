"""Conversations: the list (the API's filters and cursors), one conversation with its
transcripts, recording, latency and post-call results, and the live ones with cancel."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from openline.api.dashboard import charts
from openline.api.dashboard.web import BASE, Checked, DashboardRoute, SignedIn
from openline.api.phonic import schemas
from openline.domain.conversation import Conversation, ConversationItem
from openline.domain.errors import NotFound, ValidationFailed

router = APIRouter(prefix=BASE, route_class=DashboardRoute, include_in_schema=False)
FILTERS = ("external_id", "duration_min", "duration_max", "started_at_min", "started_at_max")
#: a live page reloads itself this often (no script needed)
LIVE_REFRESH_S = 2


@dataclass(frozen=True)
class Turn:
    """An item as the page shows it: where it lies in the recording, and whether the
    next speaker started before it ended (an interruption)."""

    item: ConversationItem
    start_ms: float | None
    end_ms: float | None
    interrupted: bool


def turns_of(conversation: Conversation) -> list[Turn]:
    out: list[Turn] = []
    items = conversation.items
    for i, item in enumerate(items):
        start = ((item.started_at - conversation.started_at).total_seconds() * 1000
                 if item.started_at else None)
        end = start + item.duration_ms if start is not None and item.duration_ms else None
        nxt = items[i + 1] if i + 1 < len(items) else None
        cut = bool(item.role == "assistant" and nxt is not None and nxt.started_at
                   and item.started_at and item.duration_ms
                   and nxt.started_at < item.started_at + timedelta(milliseconds=item.duration_ms))
        out.append(Turn(item, start, end, cut))
    return out


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValidationFailed(f"Invalid parameters: {name}",
                               {name: "must be a whole number"}) from None
    if number < 0:
        raise ValidationFailed(f"Invalid parameters: {name}", {name: "must be at least 0"})
    return number


@router.get("/conversations")
async def conversations(page: SignedIn, before: str | None = None, after: str | None = None,
                        limit: int = 20) -> Response:
    q = page.request.query_params
    filters = {name: q.get(name, "") for name in FILTERS}
    errors: dict[str, str] = {}
    listing = None
    try:
        query = schemas.conversation_list(
            page.project, filters["external_id"] or None,
            _int(filters["duration_min"], "duration_min"),
            _int(filters["duration_max"], "duration_max"),
            filters["started_at_min"] or None, filters["started_at_max"] or None,
            before or None, after or None, max(1, min(limit, 100)))
        listing = await page.svc.conversations.list_all(page.who, query)
    except ValidationFailed as exc:
        errors = exc.param_errors or {"": exc.message}
    except NotFound as exc:  # an external_id that matches nothing, or a stale cursor
        errors = {"": exc.message}
    active = {k: v for k, v in filters.items() if v}
    return page.render("conversations.html", listing=listing, filters=filters,
                       active=active, errors=errors, limit=limit)


async def _detail(page: SignedIn, conversation_id: str) -> dict[str, Any]:
    svc = page.svc
    conversation = await svc.conversations.get(page.who, conversation_id)
    stages = await page.dashboard.stage_timings(page.who, conversation_id)
    done = not conversation.is_live
    return {
        "c": conversation,
        "turns": turns_of(conversation),
        "audio_url": (svc.links.url(conversation.id, "wav")
                      if conversation.has_recording else None),
        "chart": charts.latency_chart(list(conversation.latencies_ms), stages),
        "stages": stages,
        "extractions": await svc.postcall.list_extractions(page.who, conversation_id)
        if done else [],
        "evals": await svc.postcall.list_evals(page.who, conversation_id) if done else [],
        "deliveries": await page.dashboard.deliveries_for(page.who, conversation_id),
        "refresh": LIVE_REFRESH_S if conversation.is_live else None,
    }


@router.get("/conversations/{conversation_id}")
async def conversation(conversation_id: str, page: SignedIn) -> Response:
    return page.render("conversation.html", **await _detail(page, conversation_id))


@router.post("/conversations/{conversation_id}/cancel")
async def cancel(conversation_id: str, page: Checked) -> Response:
    # Not acknowledged in time: asked all the same; the page shows the state it reaches.
    with contextlib.suppress(TimeoutError):
        await page.svc.live.cancel(page.who, conversation_id)
    return page.redirect(f"/conversations/{conversation_id}")


@router.get("/live")
async def live(page: SignedIn) -> Response:
    ids = await page.dashboard.live_ids(page.who, page.project)
    running = []
    for conversation_id in ids:
        try:
            running.append(await page.svc.conversations.get(page.who, conversation_id))
        except NotFound:
            continue  # ended and deleted meanwhile
    return page.render("live.html", running=running, refresh=LIVE_REFRESH_S)
