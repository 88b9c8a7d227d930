"""``/file`` (multipart), ``POST /analytics`` and the legacy ``/logs`` on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import LiveServer
from tests.seed import seed_conversations
from vapi import AnalyticsOperation, AnalyticsQuery, AsyncVapi, Vapi


def test_files_upload_serve_rename_delete(vapi: Vapi, raw: httpx.Client,
                                          live_server: LiveServer) -> None:
    made = vapi.files.create(file=("notes.txt", b"hello openline", "text/plain"))
    assert made.name == "notes.txt" and made.bytes == 14 and made.status == "done"
    assert made.mimetype == "text/plain" and made.url.endswith(f"/file/{made.id}/content")
    assert (live_server.data_dir / "vapi-files" / made.id).read_bytes() == b"hello openline"
    content = raw.get(made.url.replace(live_server.url, ""))
    assert content.status_code == 200 and content.content == b"hello openline"
    assert httpx.get(made.url).status_code == 401  # the URL needs the API key
    form = raw.post("/file", files={"file": ("kb.md", b"# KB", "text/markdown")},
                    data={"purpose": "knowledge-base-v2", "metadata": '{"source": "test"}'})
    assert form.status_code == 201 and form.json()["purpose"] == "knowledge-base-v2"
    assert form.json()["metadata"] == {"source": "test"}
    assert [f.id for f in vapi.files.list() if f.id in (made.id, form.json()["id"])]
    kb_only = raw.get("/file", params={"purpose": "knowledge-base-v2"}).json()
    assert form.json()["id"] in [f["id"] for f in kb_only]
    assert made.id not in [f["id"] for f in kb_only]
    assert vapi.files.update(made.id, name="renamed.txt").name == "renamed.txt"
    assert vapi.files.get(made.id).name == "renamed.txt"
    assert raw.patch(f"/file/{made.id}", json={"bytes": 1}).status_code == 400
    for bad in ({"data": {"purpose": "assistant"}},  # no file part
                {"files": {"file": ("a.txt", b"a")}, "data": {"purpose": "nonsense"}},
                {"files": {"file": ("a.txt", b"a")}, "data": {"metadata": "{not json"}}):
        r = raw.post("/file", **bad)  # type: ignore[arg-type]
        assert r.status_code == 400 and r.json()["statusCode"] == 400, bad
    assert raw.post("/file", json={"file": "x"}).status_code == 400
    assert vapi.files.delete(made.id).id == made.id
    assert not (live_server.data_dir / "vapi-files" / made.id).exists()
    assert raw.get(f"/file/{made.id}").status_code == 404
    vapi.files.delete(form.json()["id"])


async def test_async_file_upload(avapi: AsyncVapi) -> None:
    made = await avapi.files.create(file=("a.bin", b"\x00\x01", "application/octet-stream"))
    assert made.bytes == 2 and (await avapi.files.get(made.id)).id == made.id
    assert (await avapi.files.delete(made.id)).id == made.id


def test_analytics_group_and_aggregate(vapi: Vapi, raw: httpx.Client,
                                       live_server: LiveServer) -> None:
    assistant = vapi.assistants.create(name="Counted")
    start = datetime(2001, 3, 4, 22, 30, tzinfo=UTC)  # a day nothing else uses
    seed_conversations(live_server.database_url, "main", [
        {"agent_id": assistant.id, "started_at": start, "duration_ms": 60_000.0},
        {"agent_id": assistant.id, "started_at": start + timedelta(hours=3),
         "duration_ms": 30_000.0},
        {"agent_id": None, "started_at": start + timedelta(hours=4), "duration_ms": 90_000.0}])
    window = {"start": "2001-03-04T00:00:00Z", "end": "2001-03-06T00:00:00Z"}
    results = vapi.analytics.get(queries=[
        AnalyticsQuery(table="call", name="name",
                       operations=[AnalyticsOperation(operation="sum", column="id")]),
        AnalyticsQuery(table="call", name="by assistant", group_by=["assistantId"],
                       operations=[AnalyticsOperation(operation="count", column="id"),
                                   AnalyticsOperation(operation="sum", column="duration"),
                                   AnalyticsOperation(operation="avg", column="cost",
                                                      alias="meanCost")],
                       time_range={**window, "step": "day", "timezone": "America/New_York"}),
    ])
    assert results[0].name == "name" and results[0].time_range.timezone == "UTC"
    # the seed reference's example as its (older) SDK sent it: no ``table`` (calls, 7 days)
    seed = raw.post("/analytics", json={"queries": [
        {"name": "name", "operations": [{"operation": "sum", "column": "id"}]}]})
    assert seed.status_code == 201 and seed.json()[0]["name"] == "name"
    assert isinstance(seed.json()[0]["result"][0]["sumId"], float | int)
    by_day = results[1].result
    assert results[1].time_range.step == "day"
    mine = [r for r in by_day if r["assistantId"] == assistant.id]
    # 22:30 UTC is 17:30 in New York on the 4th; 01:30 UTC the next day is still the 4th
    assert [(r["date"][:10], r["countId"], r["sumDuration"], r["meanCost"]) for r in mine] == [
        ("2001-03-04", 2, 90.0, 0.0)]
    others = [r for r in by_day if r["assistantId"] is None]
    assert [(r["date"][:10], r["countId"]) for r in others] == [("2001-03-04", 1)]
    r = raw.post("/analytics", json={"queries": [{"table": "call", "name": "x", "operations": [
        {"operation": "max", "column": "duration"}], "groupBy": ["endedReason"],
        "timeRange": window}]})
    assert r.status_code == 201
    assert {(x["endedReason"], x["maxDuration"]) for x in r.json()[0]["result"]} == {
        ("customer-ended-call", 90.0)}
    for bad in ({"queries": []}, {"queries": [{"table": "call", "name": "x", "operations": [
            {"operation": "median", "column": "id"}]}]},
            {"queries": [{"table": "call", "name": "x", "groupBy": ["color"],
                          "operations": [{"operation": "count", "column": "id"}]}]},
            {"queries": [{"table": "call", "name": "x", "operations": [
                {"operation": "count", "column": "id"}], "timeRange": {"timezone": "Mars/X"}}]}):
        r = raw.post("/analytics", json=bad)
        assert r.status_code == 400 and r.json()["statusCode"] == 400, bad
    vapi.assistants.delete(assistant.id)


def test_logs_record_writes_and_page(raw: httpx.Client) -> None:
    """``/logs`` (SDK 0.1.0-0.8.1) over raw HTTP: every write of the dialect is logged."""
    name = "Logged " + uuid.uuid4().hex[:6]
    made = raw.post("/assistant", json={"name": name}).json()
    raw.patch(f"/assistant/{made['id']}", json={"firstMessage": "Hi"})
    refused = raw.post("/assistant", json={"firstMessageMode": "nope"})
    assert refused.status_code == 400
    logs = raw.get("/logs", params={"assistantId": made["id"], "type": "API"}).json()
    assert logs["metadata"]["totalItems"] == 2 and logs["metadata"]["currentPage"] == 1
    newest, oldest = logs["results"]
    assert (newest["requestHttpMethod"], oldest["requestHttpMethod"]) == ("PATCH", "POST")
    assert oldest["responseHttpCode"] == 201 and oldest["resource"] == "assistant"
    assert oldest["requestBody"] == {"name": name} and newest["time"]
    page = raw.get("/logs", params={"assistantId": made["id"], "limit": "1.0", "page": "2",
                                    "sortOrder": "ASC"}).json()
    assert [x["requestHttpMethod"] for x in page["results"]] == ["PATCH"]
    assert raw.get("/logs", params={"assistantId": made["id"], "page": "3",
                                    "limit": "1"}).json()["results"] == []
    failed = [x for x in raw.get("/logs", params={"limit": 100}).json()["results"]
              if x["responseHttpCode"] == 400 and x["requestBody"] == {"firstMessageMode": "nope"}]
    assert failed
    secret = raw.post("/phone-number", json={"provider": "twilio", "number": "+15550101010",
                                             "twilioAccountSid": "AC1",
                                             "twilioAuthToken": "hunter2"}).json()
    logged = raw.get("/logs", params={"limit": 100}).json()["results"]
    assert not any("hunter2" in str(x) for x in logged)
    raw.delete(f"/phone-number/{secret['id']}")
    deleted = raw.request("DELETE", "/logs", params={"assistantId": made["id"]})
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 2
    assert raw.get("/logs", params={"assistantId": made["id"]}).json()["results"] == []
    assert raw.get("/logs", params={"type": "Bogus"}).status_code == 400
    raw.delete(f"/assistant/{made['id']}")
