"""Event webhooks: workspace endpoints, signed deliveries through the job queue, and a log.

A domain event (``domain.events``) is published once and fanned out as one
``webhook.deliver`` job per subscribed endpoint, rendered in that endpoint's dialect by
the renderer registered for it (``renderers``: dialect -> :class:`EventRenderer`; the
composition root registers each dialect's renderer, since rendering is the edge's job).
The body is rendered when the delivery job is created, not on each attempt: the job then
carries the exact bytes and message id, so every retry sends identical bytes with the same
``webhook-id`` (receivers de-duplicate on it), even if the conversation changes meanwhile.
Each attempt, successful or not, is written to ``webhook_deliveries``. Non-2xx answers and
network errors are retried with the worker's exponential backoff; a deleted endpoint or a
URL that became unsafe ends the job without retrying.

The endpoint's dialect has no column yet: every endpoint is rendered for the Phonic dialect
(``domain.events.DEFAULT_DIALECT``) until the Vapi dialect adds one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx
from sqlalchemy import select

from openline.domain import ids
from openline.domain.errors import NotFound, ValidationFailed
from openline.domain.events import (
    EVENT_KINDS,
    Dialect,
    DomainEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from openline.domain.limits import MAX_WEBHOOK_ENDPOINTS_PER_WORKSPACE
from openline.postcall import signing
from openline.postcall.queue import ClaimedJob, JobQueue
from openline.postcall.worker import PermanentJobError
from openline.services import lookup, mapping
from openline.services.commands import CreateWebhookEndpoint
from openline.services.principal import Principal
from openline.services.url_safety import SafeAsyncClient, UnsafeUrl, check_url
from openline.store import tables_postcall as tp
from openline.store.db import Database
from openline.store.tables import utcnow

log = logging.getLogger(__name__)

ENDPOINT_PREFIX = "whep"
DELIVERY_PREFIX = "whdel"
MESSAGE_PREFIX = "msg"
DELIVER_JOB = "webhook.deliver"
#: The event kinds an endpoint may subscribe to (the domain's names).
EVENTS = EVENT_KINDS


@dataclass(frozen=True)
class RenderedEvent:
    """An event as one dialect sends it: its type name there and the exact JSON body."""

    event_type: str
    body: str


class EventRenderer(Protocol):
    """One dialect's webhook bodies; ``None`` when the dialect has no such event."""

    def render(self, event: DomainEvent, at: datetime) -> RenderedEvent | None: ...


@dataclass(frozen=True)
class WebhookOptions:
    allow_private_urls: bool = False
    timeout_s: float = 10.0
    max_attempts: int = 8


class WebhookService:
    """CRUD for endpoints, fan-out of events, and the delivery job handler."""

    def __init__(self, db: Database, queue: JobQueue, options: WebhookOptions | None = None,
                 http: httpx.AsyncClient | None = None,
                 renderers: Mapping[Dialect, EventRenderer] | None = None) -> None:
        self.db, self.queue = db, queue
        self.options = options or WebhookOptions()
        self._http = http
        self.renderers: dict[Dialect, EventRenderer] = dict(renderers or {})
        #: told of every published event first (a dialect's own deliveries: the Vapi
        #: end-of-call report); one that raises fails the publish, so the job retries
        self.listeners: list[Callable[[DomainEvent], Awaitable[None]]] = []

    # --- endpoints ------------------------------------------------------------------------

    async def create(self, who: Principal,
                     cmd: CreateWebhookEndpoint) -> tuple[WebhookEndpoint, str]:
        """Store an endpoint; returns it with its signing secret (shown only this once)."""
        url = cmd.url.strip()
        if not url:
            raise ValidationFailed("Invalid parameters: url", {"url": "is required"})
        await self._check(url)
        events = _events(cmd.events)
        secret = signing.new_secret()
        row = tp.WebhookEndpoint(id=ids.new_id(ENDPOINT_PREFIX), workspace_id=who.workspace_id,
                              url=url, events=events, secret=secret, description=cmd.description)
        async with self.db.session() as s:
            await lookup.ensure_room(
                s, tp.WebhookEndpoint.workspace_id, who.workspace_id,
                MAX_WEBHOOK_ENDPOINTS_PER_WORKSPACE, "A workspace has at most "
                f"{MAX_WEBHOOK_ENDPOINTS_PER_WORKSPACE} webhook endpoints", "url")
            s.add(row)
        return mapping.webhook_endpoint(row, EVENTS), secret

    async def list_all(self, who: Principal) -> list[WebhookEndpoint]:
        async with self.db.session() as s:
            table = tp.WebhookEndpoint
            rows = await s.scalars(select(table).where(table.workspace_id == who.workspace_id)
                                   .order_by(table.created_at, table.id))
            return [mapping.webhook_endpoint(r, EVENTS) for r in rows]

    async def get(self, who: Principal, endpoint_id: str) -> WebhookEndpoint:
        async with self.db.session() as s:
            row = await s.get(tp.WebhookEndpoint, endpoint_id)
        if row is None or row.workspace_id != who.workspace_id:
            raise NotFound("Webhook endpoint not found")
        return mapping.webhook_endpoint(row, EVENTS)

    async def delete(self, who: Principal, endpoint_id: str) -> None:
        """Delete an endpoint (its log goes with it; pending deliveries end quietly)."""
        await self.get(who, endpoint_id)
        async with self.db.session() as s:
            row = await s.get(tp.WebhookEndpoint, endpoint_id)
            if row is not None:
                await s.delete(row)

    async def deliveries(self, who: Principal, endpoint_id: str,
                         limit: int = 100) -> list[WebhookDelivery]:
        """The newest delivery attempts to an endpoint, newest first."""
        await self.get(who, endpoint_id)
        async with self.db.session() as s:
            rows = await s.scalars(
                select(tp.WebhookDelivery).where(tp.WebhookDelivery.endpoint_id == endpoint_id)
                .order_by(tp.WebhookDelivery.created_at.desc(),
                          tp.WebhookDelivery.attempt.desc())
                .limit(max(1, min(limit, 1000))))
            return [mapping.webhook_delivery(r) for r in rows]

    async def _check(self, url: str) -> None:
        try:
            await check_url(url, allow_private=self.options.allow_private_urls)
        except UnsafeUrl as exc:
            raise ValidationFailed(f"Invalid parameters: url: {exc}", {"url": str(exc)},
                                   code="unsafe_url") from exc

    # --- events ---------------------------------------------------------------------------

    async def publish(self, event: DomainEvent) -> int:
        """Queue ``event`` for every subscribed endpoint of its workspace; returns how many.

        Publishing the same occurrence again (a retried job) queues nothing new."""
        for listener in self.listeners:
            await listener(event)
        workspace_id = event.conversation.workspace.id
        async with self.db.session() as s:
            rows = list(await s.scalars(select(tp.WebhookEndpoint).where(
                tp.WebhookEndpoint.workspace_id == workspace_id,
                tp.WebhookEndpoint.disabled.is_(False))))
        targets = [e for e in (mapping.webhook_endpoint(r, EVENTS) for r in rows)
                   if e.wants(event)]
        at = utcnow()
        rendered: dict[Dialect, RenderedEvent | None] = {}
        queued = 0
        for endpoint in targets:
            if endpoint.dialect not in rendered:
                rendered[endpoint.dialect] = self._render(endpoint.dialect, event, at)
            wire = rendered[endpoint.dialect]
            if wire is None:
                continue
            job = await self.queue.enqueue(DELIVER_JOB, {
                "endpoint_id": endpoint.id, "message_id": ids.new_id(MESSAGE_PREFIX),
                "event_type": wire.event_type, "body": wire.body,
            }, dedupe_key=f"webhook:{endpoint.id}:{event.kind}:{event.occurrence}",
                max_attempts=self.options.max_attempts)
            queued += job is not None
        return queued

    def _render(self, dialect: Dialect, event: DomainEvent, at: datetime) -> RenderedEvent | None:
        renderer = self.renderers.get(dialect)
        if renderer is None:
            log.error("no %s webhook renderer registered; %s not sent", dialect, event.kind)
            return None
        return renderer.render(event, at)

    async def deliver(self, job: ClaimedJob) -> None:
        """Job handler: one signed POST; raises (to retry) unless the answer is 2xx."""
        p = job.payload
        async with self.db.session() as s:
            endpoint = await s.get(tp.WebhookEndpoint, p["endpoint_id"])
        if endpoint is None:
            return  # deleted since: nothing to deliver to
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            await check_url(endpoint.url, allow_private=self.options.allow_private_urls)
            timestamp = int(time.time())
            response = await self._client().post(
                endpoint.url, content=p["body"].encode(),
                headers=signing.headers(endpoint.secret, p["message_id"], timestamp, p["body"]))
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:200]}"
        except UnsafeUrl as exc:
            error = f"refused: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        await self._log(endpoint.id, job, status, error, time.perf_counter() - started)
        if error is None:
            return
        if error.startswith("refused:"):
            raise PermanentJobError(error)
        raise RuntimeError(error)

    async def _log(self, endpoint_id: str, job: ClaimedJob, status: int | None,
                   error: str | None, elapsed_s: float) -> None:
        async with self.db.session() as s:
            if await s.get(tp.WebhookEndpoint, endpoint_id) is None:
                return  # deleted while the request was in flight
            s.add(tp.WebhookDelivery(
                id=ids.new_id(DELIVERY_PREFIX), endpoint_id=endpoint_id,
                message_id=job.payload["message_id"], event_type=job.payload["event_type"],
                attempt=job.attempt, status_code=status, success=error is None, error=error,
                duration_ms=round(elapsed_s * 1000, 1)))

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # Vetted, pinned addresses (no DNS rebinding) and no redirects.
            self._http = SafeAsyncClient(allow_private=self.options.allow_private_urls,
                                         timeout=self.options.timeout_s)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _events(value: tuple[str, ...] | None) -> list[str]:
    if value is None:
        return list(EVENTS)
    if not value:
        raise ValidationFailed("Invalid parameters: events",
                               {"events": "must be a non-empty list of event types"})
    unknown = sorted(set(value) - set(EVENTS))
    if unknown:
        raise ValidationFailed("Invalid parameters: events",
                               {"events": f"unknown event type(s): {', '.join(unknown)}; "
                                          f"known: {', '.join(EVENTS)}"})
    return list(dict.fromkeys(value))
