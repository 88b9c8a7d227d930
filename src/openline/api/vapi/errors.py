"""Openline's exception tree as Vapi's error bodies: ``{"message", "error", "statusCode"}``.

Vapi's SDKs retry 408, 409, 429 and every 5xx, so errors a retry cannot fix never use them:
a conflict (a name taken, a call still running) is a 400 here.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openline.domain.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    OpenlineError,
    ProviderError,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger(__name__)

STATUS: list[tuple[type[OpenlineError], int]] = [
    (ValidationFailed, 400),
    (BadRequest, 400),
    (Conflict, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
]


def error_body(status: int, message: str) -> dict[str, Any]:
    """NestJS's default error shape, which Vapi answers with."""
    return {"message": message, "error": HTTPStatus(status).phrase, "statusCode": status}


def error_response(status: int, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def status_of(exc: OpenlineError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    if isinstance(exc, ProviderError):
        return 503 if exc.retryable else 400
    return 400


def response_for(exc: Exception) -> JSONResponse:
    """The Vapi error response for any exception a route raised."""
    if isinstance(exc, OpenlineError):
        return error_response(status_of(exc), exc.message)
    if isinstance(exc, RequestValidationError):
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
            problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg')}")
        return error_response(400, "; ".join(problems) or "Invalid request")
    if isinstance(exc, StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))
    log.exception("unhandled error in the Vapi dialect", exc_info=exc)
    return error_response(500, "Internal server error")
