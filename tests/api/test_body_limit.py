"""REST bodies over the cap get 413 in Phonic's error format and change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from tests.conftest import LiveServer


def _names(http: httpx.Client) -> list[str]:
    return [a["name"] for a in http.get("/agents").json()["agents"]]


def test_a_declared_oversized_body_is_refused_before_it_is_read(
        http: httpx.Client) -> None:
    before = _names(http)
    r = http.post("/agents", json={"name": "huge", "system_prompt": "x" * (2 * 1024 * 1024)})
    assert r.status_code == 413
    assert r.json() == {"error": {"message": "Request body larger than 1048576 bytes",
                                  "code": "request_too_large"}}
    assert _names(http) == before


def test_a_streamed_oversized_body_is_cut_off(live_server: LiveServer,
                                              http: httpx.Client) -> None:
    before = _names(http)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"name": "streamed", "system_prompt": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    r = httpx.post(f"{live_server.url}/v1/agents", content=chunks(), headers={
        "Authorization": f"Bearer {live_server.api_key}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert _names(http) == before


def test_a_body_under_the_cap_still_works(http: httpx.Client) -> None:
    r = http.post("/agents", json={"name": "fits-under-cap", "system_prompt": "y" * 50_000})
    assert r.status_code == 201
    assert "fits-under-cap" in _names(http)
    assert http.delete("/agents/fits-under-cap").status_code == 200
