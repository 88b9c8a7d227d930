"""``/v1/voices``: the TTS voices actually installed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from openline.api.phonic.deps import Svc, Who
from openline.api.phonic.views import voice_json

router = APIRouter(tags=["voices"])


@router.get("/voices")
async def list_voices(svc: Svc, who: Who, model: str | None = None) -> dict[str, Any]:
    # The SDK always sends model=merritt; Openline has one voice model family list.
    return {"voices": [voice_json(v, None) for v in svc.voices.list()]}


@router.get("/voices/{voice_id}")
async def get_voice(voice_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    return {"voice": voice_json(svc.voices.get(voice_id), None)}
