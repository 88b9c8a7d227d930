"""External storage policies (Phonic §4.11): an agent's recordings and transcripts go to
the user's S3-compatible bucket.

A policy names an endpoint, a bucket and credentials (sealed at rest, never returned).
An agent refers to it by name in ``external_storage_policy``; that requires zero data
retention, so the bucket is the only place the artifacts are kept. At the end of each of
the agent's conversations ``deliver`` writes, through ``obstore``:

* ``{key_prefix}{conversation_id}/recording.wav``: the stereo recording (caller left);
* ``{key_prefix}{conversation_id}/transcript.json``: the turns as spoken, with the ids.

A failed upload is retried a few times (not a missing bucket or refused credentials); after
that the error is kept on the conversation (``conversation_retention.delivery_error``) and
zero retention still drops the local copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import obstore
from obstore.store import S3Store
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select

from openline.domain import ids
from openline.domain.errors import Conflict, NotFound, ValidationFailed
from openline.domain.validation import first_error_message, param_errors_from
from openline.services import lookup
from openline.services.principal import Principal
from openline.services.redaction import Protection
from openline.services.url_safety import UnsafeUrl, check_url
from openline.store import tables as t
from openline.store import tables_phonic as tph
from openline.store.db import Database
from openline.store.tables import utcnow

log = logging.getLogger(__name__)

POLICY_PREFIX = "ext_storage"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
UPLOAD_ATTEMPTS = 3
AddressingStyle = Literal["auto", "virtual", "path"]


class PolicyFields(BaseModel):
    """The writable fields of a policy (create: all required ones; update: any)."""

    model_config = ConfigDict(extra="ignore")
    name: str
    endpoint_url: str = Field(max_length=2048)
    bucket: str = Field(min_length=3, max_length=255)
    region: str | None = Field(default=None, max_length=64)
    key_prefix: str | None = Field(default=None, max_length=512)
    addressing_style: AddressingStyle = "auto"
    access_key_id: str = Field(min_length=1, max_length=256)
    secret_access_key: str = Field(min_length=1, max_length=256)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("must be snake_case, start with a lowercase letter")
        return value


@dataclass(frozen=True)
class StoragePolicy:
    """A policy as answered (no credentials)."""

    id: str
    name: str
    endpoint_url: str
    bucket: str
    region: str | None
    key_prefix: str | None
    addressing_style: str
    agent_count: int


def _checked(data: dict[str, Any]) -> PolicyFields:
    try:
        return PolicyFields.model_validate(data)
    except ValidationError as exc:
        errors = param_errors_from(exc)
        raise ValidationFailed(first_error_message(errors), errors) from exc


class ExternalStorageService:
    """CRUD of policies and the delivery of a finished conversation's artifacts."""

    def __init__(self, db: Database, *, allow_private_urls: bool = False) -> None:
        self.db, self.allow_private_urls = db, allow_private_urls

    async def _check_endpoint(self, url: str) -> None:
        try:
            await check_url(url, allow_private=self.allow_private_urls)
        except UnsafeUrl as exc:
            raise ValidationFailed(f"Invalid parameters: endpoint_url: {exc}",
                                   {"endpoint_url": str(exc)}, code="unsafe_url") from exc
        if not self.allow_private_urls and not url.startswith("https://"):
            raise ValidationFailed("Invalid parameters: endpoint_url: must be an https URL",
                                   {"endpoint_url": "must be an https URL"})

    async def create(self, who: Principal, project: str | None,
                     body: dict[str, Any]) -> tuple[str, str]:
        fields = _checked(body)
        await self._check_endpoint(fields.endpoint_url)
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            await self._name_free(s, proj.id, fields.name, None)
            row = tph.ExternalStoragePolicy(id=ids.new_id(POLICY_PREFIX), project_id=proj.id,
                                            **fields.model_dump())
            s.add(row)
        return row.id, row.name

    async def _name_free(self, s: Any, project_id: str, name: str, own: str | None) -> None:
        other = await s.scalar(select(tph.ExternalStoragePolicy.id).where(
            tph.ExternalStoragePolicy.project_id == project_id,
            tph.ExternalStoragePolicy.name == name))
        if other is not None and other != own:
            raise Conflict("External storage policy name already exists", code="name_taken")

    async def _row(self, s: Any, who: Principal, project: str | None, name_or_id: str
                   ) -> tuple[tph.ExternalStoragePolicy, t.Project]:
        table = tph.ExternalStoragePolicy
        if name_or_id.startswith(POLICY_PREFIX + "_"):
            hit = (await s.execute(select(table, t.Project).join(
                t.Project, t.Project.id == table.project_id).where(
                table.id == name_or_id, t.Project.workspace_id == who.workspace_id))).first()
            if hit is None:
                raise NotFound("External storage policy not found")
            return hit[0], hit[1]
        proj = await lookup.project(s, who.workspace_id, project)
        row = await s.scalar(select(table).where(table.project_id == proj.id,
                                                 table.name == name_or_id))
        if row is None:
            raise NotFound("External storage policy not found")
        return row, proj

    async def list_all(self, who: Principal, project: str | None) -> list[StoragePolicy]:
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            rows = list(await s.scalars(select(tph.ExternalStoragePolicy).where(
                tph.ExternalStoragePolicy.project_id == proj.id)
                .order_by(tph.ExternalStoragePolicy.created_at)))
            users = await _users(s, proj.id)
        return [_view(r, users) for r in rows]

    async def get(self, who: Principal, project: str | None, name_or_id: str) -> StoragePolicy:
        async with self.db.session() as s:
            row, proj = await self._row(s, who, project, name_or_id)
            return _view(row, await _users(s, proj.id))

    async def update(self, who: Principal, project: str | None, name_or_id: str,
                     body: dict[str, Any]) -> None:
        """Change the given fields; the credentials change only when both are given."""
        keys = ("access_key_id", "secret_access_key")
        if sum(k in body and body[k] is not None for k in keys) == 1:
            raise ValidationFailed(
                "Invalid parameters: access_key_id and secret_access_key go together",
                {k: "give both access_key_id and secret_access_key" for k in keys})
        async with self.db.session() as s:
            row, proj = await self._row(s, who, project, name_or_id)
            current = {c: getattr(row, c) for c in PolicyFields.model_fields}
            given = {k: v for k, v in body.items() if k in current
                     and not (k in keys and v is None)}
            fields = _checked({**current, **given})
            if "endpoint_url" in given:
                await self._check_endpoint(fields.endpoint_url)
            if fields.name != row.name:
                if await _users(s, proj.id, row.name):
                    raise Conflict("Agents refer to this policy by its name; rename them "
                                   "first", code="policy_in_use")
                await self._name_free(s, proj.id, fields.name, row.id)
            for key, value in fields.model_dump().items():
                setattr(row, key, value)
            row.updated_at = utcnow()

    async def delete(self, who: Principal, project: str | None, name_or_id: str) -> None:
        """409 while agents still refer to the policy."""
        async with self.db.session() as s:
            row, proj = await self._row(s, who, project, name_or_id)
            count = (await _users(s, proj.id)).get(row.name, 0)
            if count:
                raise Conflict(f"The external storage policy is used by {count} agent(s)",
                               code="policy_in_use")
            await s.delete(row)

    # --- delivery -------------------------------------------------------------------------

    async def deliver(self, conversation_id: str, policy_name: str, recording: Path | None,
                      transcript: dict[str, Any]) -> None:
        """Upload the artifacts of one conversation; raises when the bucket refuses."""
        async with self.db.session() as s:
            conv = await s.get(t.Conversation, conversation_id)
            if conv is None:
                raise NotFound("Conversation not found")
            row = await s.scalar(select(tph.ExternalStoragePolicy).where(
                tph.ExternalStoragePolicy.project_id == conv.project_id,
                tph.ExternalStoragePolicy.name == policy_name))
        if row is None:
            raise NotFound(f"External storage policy {policy_name!r} not found")
        await check_url(row.endpoint_url, allow_private=self.allow_private_urls)
        store = _store(row, allow_http=self.allow_private_urls)
        prefix = f"{row.key_prefix or ''}{conversation_id}/"
        uploads: list[tuple[str, bytes]] = [
            (prefix + "transcript.json", json.dumps(transcript, indent=1).encode())]
        audio = await asyncio.to_thread(_read_if_there, recording)
        if audio is not None:
            uploads.append((prefix + "recording.wav", audio))
        for key, data in uploads:
            await _put(store, key, data)


def _read_if_there(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None and path.exists() else None


async def _put(store: S3Store, key: str, data: bytes) -> None:
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            await obstore.put_async(store, key, data)
            return
        except (FileNotFoundError, PermissionError):
            raise  # no such bucket, or refused credentials: trying again will not help
        except Exception:
            if attempt == UPLOAD_ATTEMPTS:
                raise
            await asyncio.sleep(0.2 * attempt)


def _store(row: tph.ExternalStoragePolicy, *, allow_http: bool) -> S3Store:
    return S3Store(
        row.bucket, endpoint=row.endpoint_url, region=row.region or "us-east-1",
        access_key_id=row.access_key_id, secret_access_key=row.secret_access_key,
        virtual_hosted_style_request=row.addressing_style == "virtual",
        client_options={"allow_http": allow_http, "timeout": "30s"})


async def check_policy_exists(s: Any, project_id: str, name: str | None) -> None:
    """An agent may only name a policy of its own project (400 otherwise)."""
    if name is None:
        return
    found = await s.scalar(select(tph.ExternalStoragePolicy.id).where(
        tph.ExternalStoragePolicy.project_id == project_id,
        tph.ExternalStoragePolicy.name == name))
    if found is None:
        raise ValidationFailed(f"Unknown external storage policy: {name}", {
            "external_storage_policy": f"no such external storage policy in this project: "
                                       f"{name}"})


async def _users(s: Any, project_id: str, name: str | None = None) -> dict[str, int]:
    """Policy name -> how many agents of the project refer to it."""
    counts: dict[str, int] = {}
    for spec in await s.scalars(select(t.Agent.spec).where(t.Agent.project_id == project_id)):
        used = (spec or {}).get("external_storage_policy")
        if used and (name is None or used == name):
            counts[used] = counts.get(used, 0) + 1
    return counts


def _view(row: tph.ExternalStoragePolicy, users: dict[str, int]) -> StoragePolicy:
    return StoragePolicy(row.id, row.name, row.endpoint_url, row.bucket, row.region,
                         row.key_prefix, row.addressing_style, users.get(row.name, 0))


def transcript_document(conversation_id: str, lines: Sequence[str]) -> dict[str, Any]:
    """What ``transcript.json`` holds: the turns as they were spoken."""
    turns = []
    for line in lines:
        speaker, _, text = line.partition(": ")
        turns.append({"role": "user" if speaker == "User" else "assistant", "text": text})
    return {"conversation_id": conversation_id, "items": turns, "transcript": "\n".join(lines)}


class ArtifactKeeper:
    """At a conversation's end: deliver to external storage, apply zero retention, and
    note when the retention policy deletes what was kept (``postcall/retention.py``)."""

    def __init__(self, db: Database, storage: ExternalStorageService) -> None:
        self.db, self.storage = db, storage

    async def finish(self, conversation_id: str, protection: Protection,
                     recording: Path | None, spoken: Sequence[str]) -> Path | None:
        """The recording path to store (``None`` once zero retention dropped it)."""
        if protection == Protection():
            return recording  # nothing to do for the default settings
        delivered, error = None, None
        if protection.external_storage:
            try:
                await self.storage.deliver(conversation_id, protection.external_storage,
                                           recording, transcript_document(conversation_id,
                                                                          spoken))
                delivered = utcnow()
            except Exception as exc:  # the record must still be stored; the error is kept
                log.warning("external storage delivery of %s failed: %s", conversation_id, exc)
                error = f"{type(exc).__name__}: {exc}"[:1000]
        if protection.zero_retention and recording is not None:
            await asyncio.to_thread(recording.unlink, True)
            recording = None
        now = utcnow()
        async with self.db.session() as s:
            row = await s.get(tph.ConversationRetention, conversation_id)
            if row is None:
                row = tph.ConversationRetention(conversation_id=conversation_id)
                s.add(row)
            row.transcripts_due_at = _due(now, protection.transcripts_hours)
            row.audio_due_at = _due(now, protection.audio_hours) if recording else None
            row.delivered_at, row.delivery_error = delivered, error
        return recording


def _due(now: datetime, hours: int | None) -> datetime | None:
    return now + timedelta(hours=hours) if hours else None
