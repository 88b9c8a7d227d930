"""Recordings in an S3-compatible store: moto in server mode, obstore as the client."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import boto3
import httpx
import pytest

from openline.providers.testing import FakeSTT
from openline.store.blobs import S3Blobs, S3Options
from tests.conftest import fake_providers, free_port, start_server
from tests.scale.harness import Caller

BUCKET = "openline-recordings"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    _s3(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    proc.terminate()
    proc.wait(10)


def _s3(endpoint: str) -> object:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def _options(endpoint: str) -> S3Options:
    return S3Options(endpoint_url=endpoint, access_key_id="test", secret_access_key="test")


async def test_the_store_puts_and_reads_back(s3_endpoint: str, tmp_path: Path) -> None:
    store = S3Blobs(f"s3://{BUCKET}/unit", _options(s3_endpoint))
    local = tmp_path / "conv_x.wav"
    local.write_bytes(b"RIFF-test-bytes")
    location = await store.put_file("conv_x.wav", local)
    assert location == f"s3://{BUCKET}/unit/conv_x.wav" and not local.exists()
    assert await store.read(location) == b"RIFF-test-bytes"
    assert await store.read(f"s3://{BUCKET}/unit/missing.wav") is None
    assert await store.read("s3://another-bucket/unit/conv_x.wav") is None
    with pytest.raises(ValueError):
        S3Blobs("/not/s3", _options(s3_endpoint))


async def test_a_call_is_recorded_to_s3_and_served_by_its_link(s3_endpoint: str,
                                                               tmp_path: Path) -> None:
    # Live recognition hears "hello"; a second recognition (post-call, over the recording
    # downloaded from S3) hears the refined text.
    providers = fake_providers(stt=FakeSTT(["hello"], default="refined from the recording"))
    server = await asyncio.to_thread(
        start_server, f"sqlite+aiosqlite:///{tmp_path / 's3.db'}", tmp_path, providers,
        recordings_url=f"s3://{BUCKET}/calls", s3_endpoint_url=s3_endpoint,
        s3_access_key_id="test", s3_secret_access_key="test")
    try:
        caller = await Caller.connect(server.ws_url, stream_ahead_of_real_time=True)
        await caller.turn()
        await caller.close()
        async with httpx.AsyncClient(base_url=f"{server.url}/v1", timeout=10, headers={
                "Authorization": f"Bearer {server.api_key}"}) as http:
            for _ in range(100):
                body = (await http.get(f"/conversations/{caller.conversation_id}")).json()
                conv = body["conversation"]
                if conv["ended_at"] and conv["post_call_transcript"]:
                    break
                await asyncio.sleep(0.1)
            link = urlparse(conv["audio_url"])
            served = await http.get(f"{server.url}{link.path}?{link.query}")
        key = f"calls/{caller.conversation_id}.wav"
        stored = _s3(s3_endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert stored[:4] == b"RIFF" and len(stored) > 16000  # over half a second of stereo
        assert served.status_code == 200 and gzip.decompress(served.content) == stored
        assert not (tmp_path / "recordings" / f"{caller.conversation_id}.wav").exists()
        assert "refined from the recording" in conv["post_call_transcript"]
    finally:
        await asyncio.to_thread(server.stop)
