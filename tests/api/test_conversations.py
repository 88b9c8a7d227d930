"""Conversations: filters, cursor pagination, get, delete and the post-call reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from phonic import AsyncPhonic, Phonic
from phonic.core.api_error import ApiError
from phonic.errors import BadRequestError, ConflictError, NotFoundError

from tests.conftest import LiveServer
from tests.seed import finish_conversation, seed_conversations

NO_RETRY: Any = {"max_retries": 0}
BASE = datetime(2025, 4, 17, 12, 0, tzinfo=UTC)


@pytest.fixture
def seeded(live_server: LiveServer, project: str) -> list[str]:
    """25 finished conversations, one a minute apart (newest last), durations 10..250 s."""
    rows = [{"started_at": BASE + timedelta(minutes=i), "duration_ms": 10_000.0 * (i + 1),
             "external_id": f"ext-{i}"} for i in range(25)]
    return seed_conversations(live_server.database_url, project, rows)


def test_list_pages_with_cursors(client: Phonic, project: str, seeded: list[str]) -> None:
    newest_first = list(reversed(seeded))
    page = client.conversations.list(project=project, limit=10)
    assert [c.id for c in page.conversations] == newest_first[:10]
    assert page.pagination.prev_cursor is None
    assert page.pagination.next_cursor == newest_first[9]
    page2 = client.conversations.list(project=project, limit=10,
                                      after=page.pagination.next_cursor)
    assert [c.id for c in page2.conversations] == newest_first[10:20]
    page3 = client.conversations.list(project=project, limit=10,
                                      after=page2.pagination.next_cursor)
    assert [c.id for c in page3.conversations] == newest_first[20:]
    assert page3.pagination.next_cursor is None
    back = client.conversations.list(project=project, limit=10,
                                     before=page3.pagination.prev_cursor)
    assert [c.id for c in back.conversations] == newest_first[10:20]
    first = client.conversations.list(project=project, limit=10,
                                      before=back.pagination.prev_cursor)
    assert [c.id for c in first.conversations] == newest_first[:10]
    assert first.pagination.prev_cursor is None
    assert client.conversations.list(project=project).conversations.__len__() == 20


def test_filters(client: Phonic, project: str, seeded: list[str]) -> None:
    def ids(**kw: Any) -> list[str]:
        return [c.id for c in client.conversations.list(project=project, limit=100,
                                                        **kw).conversations]

    assert ids(duration_min=200) == list(reversed(seeded[19:]))  # 200..250 s
    assert ids(duration_max=30) == list(reversed(seeded[:3]))
    assert ids(started_at_min=(BASE + timedelta(minutes=20)).isoformat()) == \
        list(reversed(seeded[20:]))
    assert ids(started_at_max="2025-04-17T12:02:00.000Z") == list(reversed(seeded[:3]))
    assert len(ids(started_at_min="2025-04-17", started_at_max="2025-04-17")) == 25
    assert ids(started_at_min="2025-04-18") == []
    assert ids(duration_min=100, duration_max=120) == list(reversed(seeded[9:12]))


def test_external_id_single_form(client: Phonic, http: httpx.Client, project: str,
                                 seeded: list[str]) -> None:
    r = http.get("/conversations", params={"project": project, "external_id": "ext-3"})
    assert r.status_code == 200
    assert r.json()["conversation"]["id"] == seeded[3]
    sdk = client.conversations.list(project=project, external_id="ext-3")
    assert sdk.conversation["id"] == seeded[3]  # the SDK keeps it as an extra field
    with pytest.raises(NotFoundError):
        client.conversations.list(project=project, external_id="nope")


def test_get_shape_and_analysis(client: Phonic, http: httpx.Client, seeded: list[str]) -> None:
    conv = client.conversations.get(seeded[0]).conversation
    assert conv.id == seeded[0] and conv.external_id == "ext-0"
    assert conv.items[0].role == "user" and conv.items[0].live_transcript == "hi"
    assert conv.analysis.latencies_ms == [420.0, 515.5]
    assert conv.started_at == BASE
    raw = http.get(f"/conversations/{seeded[0]}").json()["conversation"]
    for key in ("agent", "workspace", "project", "origin", "model", "ended_by", "task_results",
                "call_info", "post_call_transcript", "duration_ms", "audio_url",
                "input_format", "output_format", "template_variables"):
        assert key in raw, key
    assert raw["workspace"] == "default" and raw["ended_by"] == "user"
    assert raw["started_at"] == "2025-04-17T12:00:00.000Z"
    analysis = client.conversations.get_analysis(seeded[0]).analysis
    assert analysis.interruptions_count == 1 and analysis.id == seeded[0]
    assert client.conversations.list_extractions(seeded[0]).extractions == []
    assert client.conversations.list_evaluations(seeded[0]).evals == []


def test_delete_and_live_rules(client: Phonic, live_server: LiveServer, project: str,
                               seeded: list[str]) -> None:
    assert client.conversations.delete(seeded[0]).success
    with pytest.raises(NotFoundError):
        client.conversations.get(seeded[0])
    with pytest.raises(NotFoundError):
        client.conversations.delete(seeded[0])
    with pytest.raises(ConflictError):
        client.conversations.cancel(seeded[1], request_options=NO_RETRY)
    [live] = seed_conversations(live_server.database_url, project,
                                [{"live": True, "leased": True}])
    with pytest.raises(ConflictError):
        client.conversations.delete(live, request_options=NO_RETRY)
    assert client.conversations.get(live).conversation.ended_at is None
    finish_conversation(live_server.database_url, live)


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": 0}, "limit"),
    ({"limit": 101}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"before": "conv_a", "after": "conv_b"}, "before"),
    ({"started_at_min": "yesterday"}, "started_at_min"),
    ({"duration_min": -1}, "duration_min"),
    ({"audio_container": "mp3"}, "audio_container"),
])
def test_list_validation(http: httpx.Client, project: str, params: dict[str, Any],
                         field: str) -> None:
    r = http.get("/conversations", params={"project": project, **params})
    assert r.status_code == 400, r.text
    assert field in r.json()["param_errors"]


def test_unknown_cursor_and_project(client: Phonic, project: str) -> None:
    with pytest.raises(NotFoundError):
        client.conversations.list(project=project, after="conv_missing")
    with pytest.raises(NotFoundError):
        client.conversations.list(project="no-such-project")
    with pytest.raises(BadRequestError):
        client.conversations.list(project=project, before="a", after="b")


async def test_conversations_async(aclient: AsyncPhonic, project: str,
                                   seeded: list[str]) -> None:
    page = await aclient.conversations.list(project=project, limit=5)
    assert len(page.conversations) == 5
    got = await aclient.conversations.get(page.conversations[0].id)
    assert got.conversation.id == seeded[-1]
    with pytest.raises(ApiError):
        await aclient.conversations.get("conv_nope")
