"""``/v1/recordings/{id}``: the signed, expiring ``audio_url`` of a conversation."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from openline.api.phonic.deps import Svc
from openline.api.phonic.openapi_doc import binary_response
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.domain.errors import Forbidden, NotFound

router = APIRouter(tags=["conversations"], dependencies=[CLEAN_PARAMETERS])


@router.get("/recordings/{conversation_id}", response_class=Response,
            responses=binary_response("audio/wav", "application/gzip",
                                      description="The stereo WAV, or it gzipped"))
async def recording(
    conversation_id: str, request: Request, svc: Svc,
    expires: int, signature: str,
    container: Annotated[Literal["wav", "wav.gz"], Query()] = "wav.gz",
) -> Response:
    """The stereo WAV (caller left, assistant right); no API key, the link is the credential."""
    # A signature is hex; anything else cannot match (and must not reach compare_digest,
    # which refuses non-ASCII text).
    if not signature.isascii() or not svc.links.verify(conversation_id, container, expires,
                                                       signature):
        raise Forbidden("This recording link is invalid or has expired")
    stored = await svc.conversations.recording_path(conversation_id)
    path = Path(stored) if stored and "://" not in stored else None
    if path is not None and container == "wav" and await asyncio.to_thread(path.exists):
        return FileResponse(path, media_type="audio/wav", filename=f"{conversation_id}.wav")
    wav = await svc.live.recordings.read(stored) if stored else None  # any node, any store
    if wav is None:
        raise NotFound("Recording not found")
    if container == "wav":
        return Response(wav, media_type="audio/wav", headers={
            "Content-Disposition": f'attachment; filename="{conversation_id}.wav"'})
    data = await asyncio.to_thread(gzip.compress, wav, compresslevel=5)
    return Response(data,
                    media_type="application/gzip",
                    headers={"Content-Disposition":
                             f'attachment; filename="{conversation_id}.wav.gz"'})
