"""``/v1/external_storage_policies`` (Phonic §4.11): S3-compatible delivery targets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from openline.api.phonic.deps import Body, ProjectParam, Svc, Who
from openline.api.phonic.openapi_doc import error_responses
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc
from openline.services.external_storage import ExternalStorageService, StoragePolicy
from openline.services.hub import Services

router = APIRouter(tags=["external_storage_policies"], dependencies=[CLEAN_PARAMETERS])
_PATH = "/external_storage_policies/{name_or_id}"
_STR = {"type": "string"}
_FIELDS = {
    "name": {"type": "string", "description": "snake_case, unique in the project"},
    "endpoint_url": {"type": "string", "description": "the S3-compatible endpoint (https)"},
    "bucket": _STR, "region": {"type": ["string", "null"]},
    "key_prefix": {"type": ["string", "null"]},
    "addressing_style": {"type": "string", "enum": ["auto", "virtual", "path"]},
    "access_key_id": {"type": "string", "description": "stored encrypted, never returned"},
    "secret_access_key": {"type": "string", "description": "stored encrypted, never returned"},
}
_CREATE = {"type": "object", "properties": _FIELDS, "required": [
    "name", "endpoint_url", "bucket", "access_key_id", "secret_access_key"]}
_UPDATE = {"type": "object", "properties": _FIELDS}


def _storage(svc: Services) -> ExternalStorageService:
    assert svc.storage is not None  # every built app has it
    return svc.storage


def policy_json(policy: StoragePolicy) -> dict[str, Any]:
    """ExternalStoragePolicy (§5.8): no credentials, ever."""
    return {"id": policy.id, "name": policy.name, "endpoint_url": policy.endpoint_url,
            "bucket": policy.bucket, "region": policy.region, "key_prefix": policy.key_prefix,
            "addressing_style": policy.addressing_style, "agent_count": policy.agent_count}


@router.get("/external_storage_policies")
async def list_policies(svc: Svc, who: Who, project: ProjectParam = None) -> dict[str, Any]:
    policies = await _storage(svc).list_all(who, project)
    return {"external_storage_policies": [policy_json(p) for p in policies]}


@router.post("/external_storage_policies", status_code=201,
             openapi_extra=body_doc(_CREATE), responses=error_responses(409))
async def create_policy(svc: Svc, who: Who, body: Body,
                        project: ProjectParam = None) -> dict[str, Any]:
    policy_id, name = await _storage(svc).create(who, project, body)
    return {"id": policy_id, "name": name}


@router.get(_PATH)
async def get_policy(name_or_id: str, svc: Svc, who: Who,
                     project: ProjectParam = None) -> dict[str, Any]:
    return {"external_storage_policy": policy_json(
        await _storage(svc).get(who, project, name_or_id))}


@router.patch(_PATH, openapi_extra=body_doc(_UPDATE), responses=error_responses(409))
async def update_policy(name_or_id: str, svc: Svc, who: Who, body: Body,
                        project: ProjectParam = None) -> dict[str, Any]:
    await _storage(svc).update(who, project, name_or_id, body)
    return {"success": True}


@router.delete(_PATH, responses=error_responses(409))
async def delete_policy(name_or_id: str, svc: Svc, who: Who,
                        project: ProjectParam = None) -> dict[str, Any]:
    await _storage(svc).delete(who, project, name_or_id)
    return {"success": True}
