"""Where finished recordings live: a directory (local or shared) or an S3-compatible store.

A recording is written as the call runs into the node's spool directory (raw tracks,
flushed every second: ``voice/recorder.py``); once the call ends, the WAV is handed to
the blob store, which returns its *location* - what ``conversations.recording_path``
stores: an absolute path for a directory store, ``s3://bucket/key`` for S3. Any node
reads a recording back from its location, so signed links work whichever node serves them.

S3 goes through ``obstore`` (Rust ``object_store``), with an endpoint URL for any
S3-compatible server (MinIO, Ceph, moto in tests).
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import obstore
from obstore.store import S3Store


class BlobStore(Protocol):
    """Finished recordings by name (``conv_....wav``)."""

    #: whether locations are local paths every node can open (a directory store)
    local: bool

    async def put_file(self, name: str, path: Path) -> str:
        """Store the file at ``path`` as ``name``; returns the location to remember."""
        ...

    async def read(self, location: str) -> bytes | None:
        """The bytes stored at ``location``; ``None`` when nothing is there."""
        ...


class DirectoryBlobs:
    """Recordings in a directory: the data dir by default, or one all nodes mount."""

    local = True

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def put_file(self, name: str, path: Path) -> str:
        target = self.directory / name
        await asyncio.to_thread(_move, path, target)
        return str(target)

    async def read(self, location: str) -> bytes | None:
        path = Path(location)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None


def _move(source: Path, target: Path) -> None:
    if source.resolve() == target.resolve():
        return  # recorded straight into the store's directory
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)


@dataclass(frozen=True)
class S3Options:
    """Credentials and endpoint of an S3-compatible store (``None``: the SDK's defaults)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None


class S3Blobs:
    """Recordings in ``s3://bucket/prefix``; the local copy is removed once uploaded."""

    local = False

    def __init__(self, url: str, options: S3Options) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        config: dict[str, str] = {"region": options.region}
        if options.endpoint_url:
            config["endpoint"] = options.endpoint_url
        if options.access_key_id and options.secret_access_key:
            config["access_key_id"] = options.access_key_id
            config["secret_access_key"] = options.secret_access_key
        http = bool(options.endpoint_url and options.endpoint_url.startswith("http://"))
        self.store = S3Store(self.bucket, config=config,  # type: ignore[arg-type]
                             client_options={"allow_http": http})

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    async def put_file(self, name: str, path: Path) -> str:
        key = self._key(name)
        await obstore.put_async(self.store, key, path)  # streamed (multipart when large)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return f"s3://{self.bucket}/{key}"

    async def read(self, location: str) -> bytes | None:
        parsed = urlparse(location)
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            return None
        try:
            result = await obstore.get_async(self.store, parsed.path.lstrip("/"))
        except FileNotFoundError:
            return None
        return bytes(await result.bytes_async())


def blob_store(url: str | None, default_dir: Path, s3: S3Options) -> BlobStore:
    """The store ``OPENLINE_RECORDINGS_URL`` names: a directory path (or ``file://``),
    ``s3://bucket/prefix``, or (unset) ``default_dir``."""
    if not url:
        return DirectoryBlobs(default_dir)
    if url.startswith("s3://"):
        return S3Blobs(url, s3)
    path = urlparse(url).path if url.startswith("file://") else url
    return DirectoryBlobs(Path(path).expanduser())
