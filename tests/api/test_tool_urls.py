"""A webhook tool's endpoint_url is vetted when it is stored, not only when it is called."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BASE: dict[str, Any] = {
    "description": "Look up an order", "type": "custom_webhook", "execution_mode": "sync",
    "endpoint_method": "POST", "endpoint_timeout_ms": 2000,
}


@pytest.mark.parametrize(("url", "why"), [
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("https://user:pw@example.com/hook", "credentials"),
])
def test_an_unsafe_endpoint_url_is_refused_at_create(
        http: httpx.Client, project: str, url: str, why: str) -> None:
    r = http.post("/tools", params={"project": project},
                  json={**BASE, "name": "bad_hook", "endpoint_url": url})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "unsafe_url"
    assert why in r.json()["param_errors"]["endpoint_url"]
    assert http.get("/tools/bad_hook", params={"project": project}).status_code == 404


def test_an_unsafe_endpoint_url_is_refused_at_update(http: httpx.Client, project: str) -> None:
    good = "https://example.com/orders/{order_id}"
    body = {**BASE, "name": "hook", "endpoint_url": good,
            "parameters": [{"type": "string", "name": "order_id", "description": "id",
                            "is_required": True, "location": "url_path"}]}
    assert http.post("/tools", params={"project": project}, json=body).status_code == 201
    r = http.patch("/tools/hook", params={"project": project},
                   json={"endpoint_url": "http://169.254.169.254/{order_id}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsafe_url"
    stored = http.get("/tools/hook", params={"project": project}).json()["tool"]
    assert stored["endpoint_url"] == good
