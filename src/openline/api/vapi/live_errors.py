"""Vapi's error body for the live routes: ``{"message", "error", "statusCode"}`` (the NestJS
default shape Vapi answers with). 400/401/404 only: the SDK retries 409 and 5xx, and a
retried ``POST /call`` would dial the customer again."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from openline.domain.errors import (
    Forbidden,
    NotFound,
    OpenlineError,
    Unauthorized,
)

_STATUS = {Unauthorized: (401, "Unauthorized"), Forbidden: (403, "Forbidden"),
           NotFound: (404, "Not Found")}


def vapi_error(exc: OpenlineError) -> JSONResponse:
    status, name = next((v for k, v in _STATUS.items() if isinstance(exc, k)),
                        (400, "Bad Request"))
    return JSONResponse({"message": exc.message, "error": name, "statusCode": status},
                        status_code=status)
