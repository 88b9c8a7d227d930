"""OpenAPI request-body documentation generated from the domain models.

Bodies are parsed by hand (``deps.json_body``) so that every error uses Phonic's
error shape; these helpers only keep ``/openapi.json`` describing them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def body_doc(model: type[BaseModel] | dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body follows ``model``."""
    schema = model if isinstance(model, dict) else model.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    schema = dict(schema)
    schema.pop("$defs", None)
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": schema}}}}


def defs_of(*models: type[BaseModel]) -> dict[str, Any]:
    """Component schemas referenced by ``body_doc`` documents."""
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.get("$defs", {}))
        out[model.__name__] = {k: v for k, v in schema.items() if k != "$defs"}
    return out
