"""Every collection a list endpoint returns whole is bounded at create time."""

from __future__ import annotations

from pathlib import Path

import httpx

from openline.domain import limits as L
from tests.conftest import start_server


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/v1", headers={"Authorization": f"Bearer {key}"})


def _refused(r: httpx.Response, param: str, limit: int) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["code"] == "limit_reached" and str(limit) in body["error"]["message"]
    assert list(body["param_errors"]) == [param]


def test_workspace_and_project_collections_are_bounded(tmp_path: Path) -> None:
    server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'room.db'}", tmp_path)
    try:
        with _client(server.url, server.api_key) as http:
            for i in range(L.MAX_WEBHOOK_ENDPOINTS_PER_WORKSPACE):
                assert http.post("/webhook_endpoints", json={
                    "url": f"https://example.com/hook/{i}"}).status_code == 201
            _refused(http.post("/webhook_endpoints", json={"url": "https://example.com/x"}),
                     "url", L.MAX_WEBHOOK_ENDPOINTS_PER_WORKSPACE)
            listed = http.get("/webhook_endpoints").json()["webhook_endpoints"]
            assert len(listed) == L.MAX_WEBHOOK_ENDPOINTS_PER_WORKSPACE
            for i in range(L.MAX_EVAL_PROMPTS_PER_PROJECT):
                assert http.post("/projects/main/conversation_eval_prompts", json={
                    "name": f"e{i}", "prompt": "Was the caller helped?"}).status_code == 201
            _refused(http.post("/projects/main/conversation_eval_prompts", json={
                "name": "one-more", "prompt": "?"}), "name", L.MAX_EVAL_PROMPTS_PER_PROJECT)
            for i in range(L.MAX_SCHEMAS_PER_PROJECT):
                assert http.post("/extraction_schemas", json={
                    "name": f"s{i}", "prompt": "Extract.", "fields": [
                        {"name": "x", "type": "string", "description": "x"}]}
                ).status_code == 201, i
            _refused(http.post("/extraction_schemas", json={
                "name": "one-more", "prompt": "Extract.", "fields": [
                    {"name": "x", "type": "string", "description": "x"}]}),
                "project", L.MAX_SCHEMAS_PER_PROJECT)
            # projects: "main" exists already
            for i in range(L.MAX_PROJECTS_PER_WORKSPACE - 1):
                assert http.post("/projects", json={"name": f"p{i}"}).status_code == 201
            _refused(http.post("/projects", json={"name": "one-more"}), "name",
                     L.MAX_PROJECTS_PER_WORKSPACE)
            assert len(http.get("/projects").json()["projects"]) == L.MAX_PROJECTS_PER_WORKSPACE
    finally:
        server.stop()
