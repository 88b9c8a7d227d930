"""Raw HTTP on both databases: Vapi's error bodies, status codes the SDK would not retry,
JSON on every 2xx, DELETE with a body, a base URL with a path prefix."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer

SHAPE = {"message", "error", "statusCode"}


def test_error_bodies(live_server: LiveServer, raw: httpx.Client) -> None:
    anonymous = httpx.get(f"{live_server.url}/assistant")
    assert anonymous.status_code == 401 and set(anonymous.json()) == SHAPE
    assert anonymous.json()["error"] == "Unauthorized" and anonymous.json()["statusCode"] == 401
    wrong = httpx.get(f"{live_server.url}/call", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and set(wrong.json()) == SHAPE
    for path in ("/assistant/agent_missing", "/call/conv_missing", "/tool/x", "/squad/x",
                 "/phone-number/x", "/file/x", "/block/x"):
        r = raw.get(path)
        assert r.status_code == 404 and set(r.json()) == SHAPE, path
        assert r.json() == {"message": r.json()["message"], "error": "Not Found",
                            "statusCode": 404}
    for method, path, body in (("POST", "/assistant", b"{not json"),
                               ("POST", "/assistant", b"[1, 2]"),
                               ("POST", "/squad", b"{}"), ("POST", "/tool", b"{}"),
                               ("POST", "/phone-number", b"{}"),
                               ("POST", "/analytics", b"{}")):
        r = raw.request(method, path, content=body,
                        headers={"content-type": "application/json"})
        assert r.status_code == 400 and set(r.json()) == SHAPE, (path, r.text)
        assert r.json()["error"] == "Bad Request"
    control = raw.get("/assistant/a%01b")
    assert control.status_code == 400 and set(control.json()) == SHAPE


def test_no_retryable_status_for_errors_a_retry_cannot_fix(raw: httpx.Client,
                                                           live_server: LiveServer) -> None:
    """409 and 5xx make every Vapi SDK retry twice: a taken number, a call still running
    or a bad reference answer 400 instead."""
    made = raw.post("/assistant", json={"name": "Owner"}).json()
    other = raw.post("/assistant", json={"name": "Other"}).json()
    number = {"provider": "twilio", "number": "+15550123123", "twilioAccountSid": "AC",
              "twilioAuthToken": "t"}
    first = raw.post("/phone-number", json={**number, "assistantId": made["id"]})
    assert first.status_code == 201
    clash = raw.post("/phone-number", json={**number, "assistantId": other["id"]})
    assert clash.status_code == 400 and clash.json()["statusCode"] == 400
    from tests.seed import seed_conversations

    (live,) = seed_conversations(live_server.database_url, "main",
                                 [{"agent_id": made["id"], "live": True, "leased": True}])
    r = raw.request("DELETE", f"/call/{live}", json={})
    assert r.status_code == 400 and raw.get(f"/call/{live}").status_code == 200
    raw.delete(f"/phone-number/{first.json()['id']}")
    for a in (made, other):
        assert raw.delete(f"/assistant/{a['id']}").status_code == 200


def test_delete_takes_a_body_and_every_answer_is_json(raw: httpx.Client) -> None:
    made = raw.post("/assistant", json={"name": "Body"})
    assert made.status_code == 201 and made.json()["id"]
    r = raw.request("DELETE", f"/assistant/{made.json()['id']}", json={"ignored": True})
    assert r.status_code == 200 and r.json()["id"] == made.json()["id"]
    assert r.headers["content-type"] == "application/json"
    r = raw.request("DELETE", "/call/conv_missing", content=b"{}",
                    headers={"content-type": "application/json"})
    assert r.status_code == 404 and set(r.json()) == SHAPE
    assert raw.get("/assistant", params={"limit": 0}).json() == []
    assert isinstance(raw.get("/call", params={"limit": "1.0"}).json(), list)
