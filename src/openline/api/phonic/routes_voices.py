"""``/v1/voices``: the TTS voices actually installed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from openline.api.phonic.deps import Svc, Who
from openline.api.phonic.openapi_doc import binary_response
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.views import voice_json
from openline.domain.errors import Forbidden

router = APIRouter(tags=["voices"], dependencies=[CLEAN_PARAMETERS])


@router.get("/voices")
async def list_voices(svc: Svc, who: Who, model: str | None = None) -> dict[str, Any]:
    # The SDK always sends model=merritt; Openline has one voice model family list.
    return {"voices": [voice_json(v, svc.links.voice_url(v.id)) for v in svc.voices.list()]}


@router.get("/voices/{voice_id}")
async def get_voice(voice_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    voice = svc.voices.get(voice_id)
    return {"voice": voice_json(voice, svc.links.voice_url(voice.id))}


@router.get("/voices/{voice_id}/preview", response_class=Response,
            responses=binary_response("audio/wav", description="A spoken sample"))
async def preview(voice_id: str, svc: Svc, expires: int, signature: str) -> Response:
    """A spoken sample (WAV); the signed link is the credential, as for recordings."""
    # A signature is hex; anything else cannot match (and must not reach compare_digest,
    # which refuses non-ASCII text).
    if not signature.isascii() or not svc.links.verify_voice(voice_id, expires, signature):
        raise Forbidden("This preview link is invalid or has expired")
    voice = svc.voices.get(voice_id)
    return Response(await svc.speech.preview(voice.id), media_type="audio/wav")
