"""``/v1/projects`` and eval prompts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from openline.api.phonic import schemas
from openline.api.phonic.deps import Body, Svc, Who
from openline.api.phonic.openapi_doc import error_responses
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc
from openline.api.phonic.views import created_json, eval_json, eval_prompt_json, project_json
from openline.domain.extraction import EvalPromptSpec

router = APIRouter(tags=["projects"], dependencies=[CLEAN_PARAMETERS])
_NAME = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
_UPDATE = {"type": "object", "properties": {
    "name": {"type": "string"}, "default_agent": {"type": ["string", "null"]},
    "max_active_conversations": {"type": ["integer", "null"]}}}


@router.get("/projects")
async def list_projects(svc: Svc, who: Who) -> dict[str, Any]:
    return {"projects": [project_json(p) for p in await svc.projects.list_all(who)]}


@router.post("/projects", status_code=201, openapi_extra=body_doc(_NAME),
             responses=error_responses(409))
async def create_project(svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    return created_json(await svc.projects.create(who, schemas.project_create(body)))


@router.get("/projects/{name_or_id}")
async def get_project(name_or_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    return {"project": project_json(await svc.projects.get(who, name_or_id))}


@router.patch("/projects/{name_or_id}", openapi_extra=body_doc(_UPDATE),
              responses=error_responses(409))
async def update_project(name_or_id: str, svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    await svc.projects.update(who, schemas.project_update(body, name_or_id))
    return {"success": True}


@router.delete("/projects/{name_or_id}", responses=error_responses(409))
async def delete_project(name_or_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    await svc.projects.delete(who, name_or_id)
    return {"success": True}


@router.get("/projects/{name_or_id}/conversation_eval_prompts")
async def list_eval_prompts(name_or_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    prompts = await svc.projects.list_eval_prompts(who, name_or_id)
    return {"conversation_eval_prompts": [eval_prompt_json(p) for p in prompts]}


@router.post("/projects/{name_or_id}/conversation_eval_prompts", status_code=201,
             openapi_extra=body_doc(EvalPromptSpec))
async def create_eval_prompt(name_or_id: str, svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    prompt = await svc.projects.create_eval_prompt(who, schemas.eval_prompt_create(body,
                                                                                  name_or_id))
    return created_json(prompt)


@router.get("/projects/{name_or_id}/conversation_evals")
async def list_project_evals(name_or_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    evals = await svc.postcall.list_project_evals(who, name_or_id)  # 404: unknown project
    return {"evals": [eval_json(e, with_conversation=True) for e in evals]}
