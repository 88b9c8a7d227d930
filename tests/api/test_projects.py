"""Projects and eval prompts through the official SDK (sync and async)."""

from __future__ import annotations

import httpx
import pytest
from phonic import AsyncPhonic, Phonic
from phonic.core.api_error import ApiError
from phonic.errors import BadRequestError, NotFoundError

from tests.api.conftest import unique


def test_project_lifecycle(client: Phonic) -> None:
    name = unique("proj")
    created = client.projects.create(name=name)
    assert created.id.startswith("proj_") and created.name == name
    assert name in [p.name for p in client.projects.list().projects]

    got = client.projects.get(name).project
    assert got.id == created.id and got.default_agent is None
    assert got.active_conversations == 0 and got.max_active_conversations is None
    assert client.projects.get(created.id).project.name == name

    client.agents.create(name="front-desk", project=name)
    assert client.projects.update(name, default_agent="front-desk",
                                  max_active_conversations=5).success
    got = client.projects.get(name).project
    assert got.default_agent.name == "front-desk" and got.max_active_conversations == 5
    client.projects.update(name, default_agent=None)
    assert client.projects.get(name).project.default_agent is None

    renamed = unique("renamed")
    client.projects.update(name, name=renamed)
    assert client.projects.get(created.id).project.name == renamed
    assert client.projects.delete(renamed).success
    with pytest.raises(NotFoundError):
        client.projects.get(created.id)


def test_project_validation(client: Phonic, http: httpx.Client) -> None:
    with pytest.raises(BadRequestError) as err:
        client.projects.create(name="Bad Name")
    assert "name" in err.value.body["param_errors"]
    name = unique("dup")
    client.projects.create(name=name)
    try:
        r = http.post("/projects", json={"name": name})
        assert r.status_code == 409 and r.json()["error"]["message"]
        r = http.patch(f"/projects/{name}", json={"default_agent": "no-such-agent"})
        assert r.status_code == 400 and "default_agent" in r.json()["param_errors"]
    finally:
        client.projects.delete(name)


def test_cannot_delete_last_project(client: Phonic, http: httpx.Client) -> None:
    projects = [p.name for p in client.projects.list().projects]
    assert "main" in projects
    # Delete every other project would race other tests; instead check the rule on a
    # workspace with one project by asking the server to delete them all but one.
    r = http.delete("/projects/main") if len(projects) == 1 else None
    if r is None:
        others = [p for p in projects if p != "main"]
        for p in others:
            http.delete(f"/projects/{p}")
        r = http.delete("/projects/main")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "last_project_in_workspace"
    assert client.projects.get("main").project.name == "main"


def test_eval_prompts(client: Phonic, project: str) -> None:
    proj_id = client.projects.get(project).project.id
    created = client.projects.create_eval_prompt(proj_id, name="polite",
                                                 prompt="Was the assistant polite?")
    assert created.id.startswith("conv_eval_prompt_")
    prompts = client.projects.list_eval_prompts(proj_id).conversation_eval_prompts
    assert [(p.name, p.prompt) for p in prompts] == [("polite", "Was the assistant polite?")]
    assert client.projects.list_evals(proj_id).evals == []
    with pytest.raises(BadRequestError):
        client.projects.create_eval_prompt(proj_id, name="empty", prompt="")


async def test_projects_async(aclient: AsyncPhonic) -> None:
    name = unique("async")
    created = await aclient.projects.create(name=name)
    assert (await aclient.projects.get(created.id)).project.name == name
    # projects.create has no typed 409 in the SDK: it surfaces as a plain ApiError.
    with pytest.raises(ApiError) as err:
        await aclient.projects.create(name=name, request_options={"max_retries": 0})
    assert err.value.status_code == 409
    assert (await aclient.projects.delete(name)).success
