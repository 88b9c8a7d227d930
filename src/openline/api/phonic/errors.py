"""Translate Openline's exception tree into Phonic's error bodies and status codes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openline.domain.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    OpenlineError,
    Unauthorized,
    ValidationFailed,
)
from openline.domain.validation import param_errors_from

log = logging.getLogger(__name__)

STATUS: list[tuple[type[OpenlineError], int]] = [
    (ValidationFailed, 400),
    (BadRequest, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
]


def error_body(message: str, code: str | None = None,
               param_errors: dict[str, str] | None = None) -> dict[str, Any]:
    """Phonic's BasicError, or ValidationError when ``param_errors`` is given."""
    error: dict[str, Any] = {"message": message}
    if code:
        error["code"] = code
    body: dict[str, Any] = {"error": error}
    if param_errors is not None:
        body["param_errors"] = param_errors
    return body


def status_of(exc: OpenlineError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _openline(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpenlineError)
    status = status_of(exc)
    if status == 500:
        log.error("unmapped error: %s", exc, exc_info=exc)
    params = exc.param_errors if isinstance(exc, ValidationFailed) else None
    code = exc.code if (exc.code and not isinstance(exc, ValidationFailed)) else None
    if isinstance(exc, ValidationFailed) and exc.code != ValidationFailed.code:
        code = exc.code
    return JSONResponse(error_body(exc.message, code, params), status_code=status)


def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    params: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body", "header")]
        params.setdefault(".".join(loc) or "request", str(err.get("msg")))
    first = next(iter(params.items()))
    return JSONResponse(error_body(f"Invalid parameters: {first[0]}: {first[1]}", None, params),
                        status_code=400)


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = "Route not found"
    return JSONResponse(error_body(message), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("Internal server error", "internal_error"), status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(OpenlineError, _openline)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


__all__ = ["error_body", "install", "param_errors_from", "status_of"]
