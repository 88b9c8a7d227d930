"""``POST /v1/tts`` (whole clip, base64) and ``POST /v1/tts/stream`` (raw audio as made)."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from openline.api.phonic import schemas
from openline.api.phonic.deps import Body, Svc, Who
from openline.api.phonic.openapi_doc import binary_response
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc

router = APIRouter(tags=["tts"], dependencies=[CLEAN_PARAMETERS])
_BODY = {"type": "object", "required": ["text"], "properties": {
    "text": {"type": "string", "minLength": 1}, "model": {"type": "string", "default": "merritt"},
    "speed": {"type": "number", "minimum": 0.5, "maximum": 1.5, "default": 1.2},
    "voice_id": {"type": "string", "default": "grant"},
    "output_format": {"enum": ["pcm_44100", "pcm_24000", "pcm_16000", "pcm_8000", "mulaw_8000"],
                      "default": "pcm_44100"}}}


@router.post("/tts", openapi_extra=body_doc(_BODY))
async def tts(svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    speech = svc.speech.prepare(schemas.synthesize(body))
    audio = b"".join([chunk async for chunk in svc.speech.synthesize(speech)])
    return {"audio": base64.b64encode(audio).decode()}


@router.post("/tts/stream", response_class=StreamingResponse, openapi_extra=body_doc(_BODY),
             responses=binary_response("audio/pcm", "audio/ulaw",
                                       description="Raw audio bytes as they are made"))
async def tts_stream(svc: Svc, who: Who, body: Body) -> StreamingResponse:
    speech = svc.speech.prepare(schemas.synthesize(body))
    media = "audio/ulaw" if speech.format.encoding == "mulaw" else "audio/pcm"
    return StreamingResponse(svc.speech.synthesize(speech), media_type=media)
