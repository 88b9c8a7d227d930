"""Every REST route of the Vapi dialect, for the scope table (``api/phonic/scopes.py``):
all of them take an API key (Vapi's private key). Plain data, no imports, so the scope
table can read it without importing the dialect."""

from __future__ import annotations

_ASSISTANT, _CALL = "/assistant/{assistant_id}", "/call/{call_id}"
_SQUAD, _TOOL, _NUMBER = "/squad/{squad_id}", "/tool/{tool_id}", "/phone-number/{number_id}"
_FILE, _BLOCK = "/file/{file_id}", "/block/{block_id}"


def _crud(collection: str, item: str) -> tuple[tuple[str, str], ...]:
    return (("GET", collection), ("POST", collection), ("GET", item), ("PATCH", item),
            ("DELETE", item))


API_KEY_ROUTES: tuple[tuple[str, str], ...] = (
    *_crud("/assistant", _ASSISTANT),
    ("GET", "/call"), ("GET", _CALL), ("PATCH", _CALL), ("DELETE", _CALL),
    ("GET", f"{_CALL}/stereo-recording"), ("GET", f"{_CALL}/{{artifact}}"),
    *_crud("/tool", _TOOL), *_crud("/squad", _SQUAD), *_crud("/phone-number", _NUMBER),
    ("GET", "/v2/phone-number"),
    *_crud("/file", _FILE), ("GET", f"{_FILE}/content"), *_crud("/block", _BLOCK),
    ("POST", "/analytics"), ("GET", "/logs"), ("DELETE", "/logs"),
)
