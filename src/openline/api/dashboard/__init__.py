"""The web dashboard served at ``/`` (pages under ``/dashboard``): server-rendered Jinja2
templates over the same services as the REST API, one small JavaScript module for audio.
"""

from __future__ import annotations

from fastapi import APIRouter

from openline.api.dashboard import pages_agents, pages_auth, pages_conversations, pages_resources

router = APIRouter(include_in_schema=False)
for _module in (pages_auth, pages_agents, pages_conversations, pages_resources):
    router.include_router(_module.router)

__all__ = ["router"]
