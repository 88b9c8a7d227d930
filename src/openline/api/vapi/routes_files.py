"""``/file``: multipart uploads kept in the data directory, and their content at ``url``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.vapi.deps import Body, Vapi, Who
from openline.api.vapi.routing import VapiRoute
from openline.domain.errors import ValidationFailed
from openline.services.vapi.files import Upload, file_json

router = APIRouter(tags=["vapi: files"], route_class=VapiRoute,
                   dependencies=[CLEAN_PARAMETERS])


async def _upload(request: Request) -> Upload:
    if "multipart/form-data" not in request.headers.get("content-type", ""):
        raise ValidationFailed("POST /file takes multipart/form-data with a part 'file'",
                               {"file": "multipart upload required"})
    form = await request.form()
    part = form.get("file")
    if part is None or isinstance(part, str):
        raise ValidationFailed("The upload has no part 'file'", {"file": "required"})
    purpose = form.get("purpose")
    metadata: Any = form.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError as exc:
            raise ValidationFailed("metadata must be a JSON string",
                                   {"metadata": "not JSON"}) from exc
    elif metadata is not None:
        raise ValidationFailed("metadata must be a JSON string", {"metadata": "not JSON"})
    return Upload(part.filename or "", part.content_type, await part.read(),
                  purpose if isinstance(purpose, str) else None, metadata)


@router.get("/file")
async def list_files(vapi: Vapi, who: Who,
                     purpose: Annotated[str | None, Query()] = None) -> list[dict[str, Any]]:
    return [file_json(d, who.workspace_id) for d in await vapi.files.list_all(who, purpose)]


@router.post("/file", status_code=201)
async def create_file(request: Request, vapi: Vapi, who: Who) -> dict[str, Any]:
    return file_json(await vapi.files.create(who, await _upload(request)), who.workspace_id)


@router.get("/file/{file_id}")
async def get_file(file_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return file_json(await vapi.files.get(who, file_id), who.workspace_id)


@router.get("/file/{file_id}/content", response_class=FileResponse)
async def file_content(file_id: str, vapi: Vapi, who: Who) -> FileResponse:
    """The file's bytes (its ``url``), with the API key."""
    doc, path = await vapi.files.content(who, file_id)
    return FileResponse(path, media_type=str(doc.doc.get("mimetype") or
                                             "application/octet-stream"),
                        filename=str(doc.doc.get("originalName") or file_id))


@router.patch("/file/{file_id}")
async def update_file(file_id: str, vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    return file_json(await vapi.files.update(who, file_id, body), who.workspace_id)


@router.delete("/file/{file_id}")
async def delete_file(file_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return file_json(await vapi.files.delete(who, file_id), who.workspace_id)
