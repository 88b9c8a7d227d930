"""Vapi files: uploaded (multipart), kept in the data directory, served at their ``url``."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openline.domain.errors import NotFound, ValidationFailed
from openline.services.principal import Principal
from openline.services.vapi.call_view import iso
from openline.services.vapi.docs import Doc, ListQuery, VapiDocs, new_id

KIND = "file"
PURPOSES = ("assistant", "composer-attachment", "knowledge-base-v2")
_MAX_NAME = 255


@dataclass(frozen=True)
class Upload:
    """One uploaded file, as the multipart body carried it."""

    filename: str
    content_type: str | None
    data: bytes
    purpose: str | None = None
    metadata: Any = None


class FileService:
    def __init__(self, docs: VapiDocs, directory: Path, public_url: str) -> None:
        self.docs, self.directory, self.public_url = docs, directory, public_url.rstrip("/")

    def path_of(self, file_id: str) -> Path:
        return self.directory / file_id

    def url_of(self, file_id: str) -> str:
        return f"{self.public_url}/file/{file_id}/content"

    async def create(self, who: Principal, upload: Upload) -> Doc:
        if not upload.filename or len(upload.filename) > _MAX_NAME:
            raise ValidationFailed("file needs a name of at most 255 characters",
                                   {"file": "missing or too long a name"})
        if upload.purpose is not None and upload.purpose not in PURPOSES:
            raise ValidationFailed("purpose must be one of " + ", ".join(PURPOSES),
                                   {"purpose": "unknown purpose"})
        file_id = new_id()
        path = self.path_of(file_id)
        await asyncio.to_thread(_write, path, upload.data)
        mimetype = upload.content_type or mimetypes.guess_type(upload.filename)[0] \
            or "application/octet-stream"
        doc: dict[str, Any] = {
            "object": "file", "status": "done", "name": upload.filename,
            "originalName": upload.filename, "bytes": len(upload.data), "mimetype": mimetype,
            "key": file_id, "path": f"vapi-files/{file_id}", "url": self.url_of(file_id)}
        if upload.purpose is not None:
            doc["purpose"] = upload.purpose
        if upload.metadata is not None:
            doc["metadata"] = upload.metadata
        try:
            return await self.docs.create(who, KIND, doc, doc_id=file_id)
        except BaseException:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise

    async def get(self, who: Principal, file_id: str) -> Doc:
        return await self.docs.get(who, KIND, file_id)

    async def list_all(self, who: Principal, purpose: str | None) -> list[Doc]:
        docs = await self.docs.list_all(who, KIND, ListQuery(limit=1000))
        return [d for d in docs if purpose is None or d.doc.get("purpose") == purpose]

    async def update(self, who: Principal, file_id: str, body: Mapping[str, Any]) -> Doc:
        unknown = sorted(set(body) - {"name"})
        if unknown:
            raise ValidationFailed(f"property {unknown[0]} should not exist",
                                   {unknown[0]: "should not exist"})
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= _MAX_NAME:
            raise ValidationFailed("name must be a string of 1 to 255 characters",
                                   {"name": "1 to 255 characters"})
        current = await self.docs.get(who, KIND, file_id)
        return await self.docs.replace(who, KIND, file_id, {**current.doc, "name": name})

    async def delete(self, who: Principal, file_id: str) -> Doc:
        gone = await self.docs.delete(who, KIND, file_id)
        await asyncio.to_thread(self.path_of(file_id).unlink, missing_ok=True)
        return gone

    async def content(self, who: Principal, file_id: str) -> tuple[Doc, Path]:
        doc = await self.docs.get(who, KIND, file_id)
        path = self.path_of(file_id)
        if not await asyncio.to_thread(path.exists):
            raise NotFound("File content not found")
        return doc, path


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a crash leaves no half-written file under the real name


def file_json(d: Doc, org_id: str) -> dict[str, Any]:
    out = dict(d.doc)
    out.update(id=d.id, orgId=org_id, createdAt=iso(d.created_at), updatedAt=iso(d.updated_at))
    return out
