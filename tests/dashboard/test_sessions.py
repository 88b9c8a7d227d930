"""Dashboard sessions without a browser, on SQLite and PostgreSQL: workspace isolation,
revoked keys, tokens refused at sign-in, the one-time login link of the CLI, and the
security headers of every kind of response."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from openline.api.dashboard.web import CSP
from tests.conftest import LiveServer, fake_providers, start_server
from tests.dashboard.conftest import other_workspace
from tests.seed import seed_conversations


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{live_server.url}/v1", timeout=30,
                      headers={"Authorization": f"Bearer {live_server.api_key}"}) as c:
        yield c


def browser_client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)


def sign_in(client: httpx.Client, api_key: str) -> httpx.Response:
    form = client.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return client.post("/dashboard/login", data={"api_key": api_key,
                                                 "csrf_token": token.group(1), "next": ""})


def test_a_workspace_sees_only_its_own_data(live_server: LiveServer, http: httpx.Client
                                            ) -> None:
    name = f"mine-{os.getpid()}"
    http.post("/agents", json={"name": name})
    (conv_id,) = seed_conversations(live_server.database_url, "main", [{}])
    other_key = other_workspace(live_server.database_url)
    with browser_client(live_server) as mine, browser_client(live_server) as theirs:
        assert sign_in(mine, live_server.api_key).status_code == 303
        assert sign_in(theirs, other_key).status_code == 303
        assert name in mine.get("/dashboard/agents").text
        assert mine.get(f"/dashboard/conversations/{conv_id}").status_code == 200
        assert name not in theirs.get("/dashboard/agents").text
        refused = theirs.get(f"/dashboard/conversations/{conv_id}")
        assert refused.status_code == 404 and conv_id not in refused.text.split("<main>")[1]
        assert theirs.get(f"/dashboard/agents/{name}").status_code == 404
        assert conv_id not in theirs.get("/dashboard/conversations").text
    http.delete(f"/agents/{name}")
    http.delete(f"/conversations/{conv_id}")


def test_conversation_list_filters_and_cursor_paging(live_server: LiveServer,
                                                      http: httpx.Client) -> None:
    tag = f"page-{os.getpid()}-{datetime.now(UTC).timestamp():.0f}"
    base = datetime.now(UTC) - timedelta(days=400)  # older than anything else stored
    conv_ids = seed_conversations(live_server.database_url, "main", [
        {"external_id": f"{tag}-{i}", "started_at": base + timedelta(minutes=i),
         "duration_ms": 1000.0 * (i + 1)} for i in range(25)])
    newest_first = list(reversed(conv_ids))
    window = {"started_at_max": (base + timedelta(days=1)).strftime("%Y-%m-%d")}
    with browser_client(live_server) as client:
        sign_in(client, live_server.api_key)

        def listed(params: dict[str, str]) -> tuple[list[str], str | None]:
            html = client.get("/dashboard/conversations", params=params).text
            found = re.findall(r'href="/dashboard/conversations/(conv_[^"?]+)"', html)
            older = re.search(r'id="older" href="([^"]+)"', html)
            return found, older.group(1).replace("&amp;", "&") if older else None

        first, older = listed({**window, "limit": "10"})
        assert first == newest_first[:10] and older is not None
        second, _ = listed(dict(httpx.URL(older).params))
        assert second == newest_first[10:20]
        long_ones, _ = listed({**window, "duration_min": "20"})  # the API's filter, in s
        assert long_ones == newest_first[:6]
        html = client.get("/dashboard/conversations", params={"duration_min": "soon"}).text
        assert 'class="field invalid"' in html and "must be a whole number" in html
        html = client.get("/dashboard/conversations",
                          params={"started_at_min": "yesterday"}).text
        assert 'class="field invalid"' in html
    for conv_id in conv_ids:
        http.delete(f"/conversations/{conv_id}")


def test_revoking_the_key_ends_its_sessions_and_tokens_cannot_sign_in(
        live_server: LiveServer, http: httpx.Client) -> None:
    key = http.post("/api_keys", json={"name": "browser"}).json()
    with browser_client(live_server) as client:
        assert sign_in(client, key["api_key"]).status_code == 303
        assert client.get("/dashboard/keys").status_code == 200
        http.delete(f"/api_keys/{key['id']}")
        gone = client.get("/dashboard/keys")
        assert gone.status_code == 303 and gone.headers["location"].startswith(
            "/dashboard/login")
    token = http.post("/auth/session_token", json={}).json()["session_token"]
    with browser_client(live_server) as client:
        refused = sign_in(client, token)
        assert refused.status_code == 401 and "Sign in with an API key" in refused.text
        assert "ol_session" not in client.cookies


def test_every_response_has_the_security_headers(live_server: LiveServer) -> None:
    with browser_client(live_server) as client:
        for path in ("/", "/dashboard/login", "/dashboard/agents", "/dashboard/static/app.css",
                     "/dashboard/static/nope.js"):
            r = client.get(path)
            assert r.headers["content-security-policy"] == CSP, path
            assert r.headers["x-frame-options"] == "DENY", path
        stale = client.post("/dashboard/login", data={"api_key": live_server.api_key,
                                                      "csrf_token": "forged"})
        assert stale.status_code == 400 and "ol_session" not in client.cookies
        plain = sign_in(client, live_server.api_key).headers["set-cookie"]
        assert "HttpOnly" in plain and "SameSite=lax" in plain and "Secure" not in plain
    # Behind a TLS proxy on this host (uvicorn trusts X-Forwarded-Proto from 127.0.0.1).
    with httpx.Client(base_url=live_server.url, headers={"X-Forwarded-Proto": "https"},
                      follow_redirects=False) as client:
        form = client.get("/dashboard/login")
        assert "; Secure" in form.headers["set-cookie"]
        token = form.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        # (httpx keeps Secure cookies for https only: the browser's part is done by hand)
        signed = client.post("/dashboard/login", data={"api_key": live_server.api_key,
                                                       "csrf_token": token},
                             headers={"Cookie": f"ol_login_csrf={token}"})
        cookie = signed.headers["set-cookie"]
        assert signed.status_code == 303 and "ol_session=" in cookie
        assert "; Secure" in cookie and "HttpOnly" in cookie


@pytest.fixture
def cli_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'openline.db'}", tmp_path,
                          fake_providers())
    yield server
    server.stop()


def test_the_cli_login_link_signs_in_once(cli_server: LiveServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    env.update(OPENLINE_DATA_DIR=str(tmp_path), OPENLINE_PUBLIC_URL=cli_server.url)
    out = subprocess.run([sys.executable, "-m", "openline.cli.main", "keys", "create",
                          "--name", "laptop", "--dashboard"], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert out[0].split("\t")[1] == "laptop"
    link = out[1].split("\t")[0]
    assert link.startswith(f"{cli_server.url}/dashboard/login/link?token=ol_login_")
    with httpx.Client(timeout=30) as client:
        first = client.get(link)
        assert first.status_code == 303 and "ol_session" in client.cookies
        assert client.get(f"{cli_server.url}/dashboard/keys").status_code == 200
    with httpx.Client(timeout=30) as client:
        again = client.get(link)
        assert again.status_code == 400 and "ol_session" not in client.cookies
