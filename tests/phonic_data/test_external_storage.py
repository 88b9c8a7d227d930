"""External storage policies through the official SDK, delivering to a local S3-compatible
server (moto): CRUD, credentials sealed at rest and never answered, agent rules, and the
recording and transcript of a zero-retention agent's call landing in the bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from phonic.errors import BadRequestError, ConflictError, NotFoundError
from sqlalchemy import text

from openline.store.db import Database
from tests.conftest import LiveServer, free_port
from tests.phonic_data.conftest import NO_RETRY, ServerFactory, one_turn, sdk

KEY_ID, SECRET = "AKIAOPENLINETEST0001", "s3-secret-value-for-tests-only"


def _raw(server: LiveServer, path: str) -> str:
    return httpx.get(f"{server.url}{path}",
                     headers={"Authorization": f"Bearer {server.api_key}"}).text


@pytest.fixture
def s3() -> Iterator[Any]:
    """A local S3-compatible server with one bucket, ``calls``; yields a boto3 client."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                          aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                          region_name="us-east-1")
    client.create_bucket(Bucket="calls")
    client.endpoint = f"http://127.0.0.1:{port}"
    yield client
    server.stop()


async def test_policies_and_delivery(backend: str, make_server: ServerFactory,
                                     s3: Any) -> None:
    server = make_server(backend)
    client = sdk(server)
    created = await client.external_storage_policies.create(
        name="archive", endpoint_url=s3.endpoint, bucket="calls", region="us-east-1",
        key_prefix="openline/", addressing_style="path", access_key_id=KEY_ID,
        secret_access_key=SECRET)
    assert created.id.startswith("ext_storage_") and created.name == "archive"
    with pytest.raises(ConflictError):
        await client.external_storage_policies.create(
            name="archive", endpoint_url=s3.endpoint, bucket="calls",
            access_key_id=KEY_ID, secret_access_key=SECRET, request_options=NO_RETRY)
    with pytest.raises(BadRequestError):
        await client.external_storage_policies.create(
            name="Not-Snake", endpoint_url=s3.endpoint, bucket="calls",
            access_key_id=KEY_ID, secret_access_key=SECRET)

    # Credentials: sealed in the database, never in an answer.
    raw = _raw(server, "/v1/external_storage_policies/archive")
    assert SECRET not in raw and KEY_ID not in raw
    db = Database(server.database_url)
    try:
        async with db.session() as s:
            stored = (await s.execute(text("SELECT access_key_id, secret_access_key FROM "
                                           "external_storage_policies"))).one()
    finally:
        await db.dispose()
    assert all(v.startswith("sealed:v1:") for v in stored) and SECRET not in str(stored)

    # The agent rules of §5.1: zero data retention required, no redaction with it.
    with pytest.raises(BadRequestError):
        await client.agents.create(name="keeper", external_storage_policy="archive")
    await client.agents.create(name="keeper", system_prompt="You are Ann.",
                               external_storage_policy="archive",
                               data_retention_policy={"zero_data_retention": True})
    policy = (await client.external_storage_policies.get("archive")).external_storage_policy
    assert (policy.bucket, policy.key_prefix, policy.addressing_style, policy.agent_count) == (
        "calls", "openline/", "path", 1)

    conv_id = await one_turn(client, "keeper")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(
        Bucket="calls", Prefix=f"openline/{conv_id}/")["Contents"])
    assert keys == [f"openline/{conv_id}/recording.wav", f"openline/{conv_id}/transcript.json"]
    transcript = json.loads(s3.get_object(Bucket="calls", Key=keys[1])["Body"].read())
    assert transcript["items"] == [{"role": "user", "text": "I need a table for two"},
                                   {"role": "assistant", "text": "As You are Ann, I can help."}]
    wav = s3.get_object(Bucket="calls", Key=keys[0])["Body"].read()
    assert wav[:4] == b"RIFF" and len(wav) > 16_000 * 2 * 2  # > 0.5 s of stereo 16 kHz
    local = (await client.conversations.get(conv_id)).conversation
    assert local.audio_url is None and local.live_transcript is None  # kept only there

    # Updates: both keys or neither; a policy in use cannot be deleted.
    with pytest.raises(BadRequestError):
        await client.external_storage_policies.update("archive", access_key_id="AKIANEW")
    await client.external_storage_policies.update("archive", key_prefix="v2/",
                                                  access_key_id="AKIANEW0000000000002",
                                                  secret_access_key="rotated-secret")
    listed = (await client.external_storage_policies.list()).external_storage_policies
    assert [(p.name, p.key_prefix) for p in listed] == [("archive", "v2/")]
    with pytest.raises(ConflictError):
        await client.external_storage_policies.delete("archive", request_options=NO_RETRY)
    await client.agents.delete("keeper")
    await client.external_storage_policies.delete(created.id)
    with pytest.raises(NotFoundError):
        await client.external_storage_policies.get("archive")


async def test_a_failed_delivery_keeps_the_record_and_the_reason(
        make_server: ServerFactory, s3: Any) -> None:
    server = make_server()
    client = sdk(server)
    await client.external_storage_policies.create(
        name="nowhere", endpoint_url=s3.endpoint, bucket="no-such-bucket",
        addressing_style="path", access_key_id=KEY_ID, secret_access_key=SECRET)
    await client.agents.create(name="lost", system_prompt="You are Ann.",
                               external_storage_policy="nowhere",
                               data_retention_policy={"zero_data_retention": True})
    with pytest.raises(BadRequestError):  # only a policy of the project can be named
        await client.agents.update("lost", external_storage_policy="missing")
    conv_id = await one_turn(client, "lost")
    conversation = (await client.conversations.get(conv_id)).conversation
    assert conversation.ended_by == "user" and len(conversation.items) == 2
    assert conversation.audio_url is None  # zero retention holds even so
    db = Database(server.database_url)
    try:
        async with db.session() as s:
            error = (await s.execute(text(
                "SELECT delivery_error FROM conversation_retention WHERE conversation_id = :c"),
                {"c": conv_id})).scalar_one()
    finally:
        await db.dispose()
    assert error is not None and "NoSuchBucket" in error
