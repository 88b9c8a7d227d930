"""A router-wide check of path and query parameters.

A NUL in a name, an ID or a filter reached the database as a query parameter, and
PostgreSQL refuses NUL in text, so ``GET /v1/agents/a%00b`` answered 500. Control
characters never belong in these values: they are refused with a 400 first.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from openline.domain.errors import ValidationFailed
from openline.domain.limits import control_char_error
from openline.domain.validation import first_error_message


async def clean_parameters(request: Request) -> None:
    """400 (Phonic's ``ValidationError``) naming each parameter with a control character."""
    errors: dict[str, str] = {}
    pairs = [*request.path_params.items(), *request.query_params.multi_items()]
    for key, value in pairs:
        if control_char_error(key):
            errors.setdefault("query", "parameter names must not contain control characters")
        elif (problem := control_char_error(str(value))) is not None:
            errors.setdefault(key, problem)
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)


#: ``APIRouter(dependencies=[CLEAN_PARAMETERS])`` on every REST router.
CLEAN_PARAMETERS: Any = Depends(clean_parameters)
