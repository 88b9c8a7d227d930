"""Expiring signed links to recordings and voice previews (served by Openline itself),
and where finished recordings are kept (``RecordingStore``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

from openline.store import tables as t
from openline.store.blobs import BlobStore, DirectoryBlobs
from openline.store.db import Database

LINK_TTL_S = 24 * 3600  # Phonic's presigned audio URLs last a day
VOICE_LINK_TTL_S = 7 * 24 * 3600  # ... and voice previews a week


class RecordingLinks:
    def __init__(self, public_url: str, secret: str) -> None:
        self.public_url = public_url.rstrip("/")
        self._key = secret.encode()

    def _sign(self, conversation_id: str, container: str, expires: int) -> str:
        msg = f"{conversation_id}:{container}:{expires}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def url(self, conversation_id: str, container: str = "wav.gz",
            now: float | None = None) -> str:
        expires = int((now or time.time()) + LINK_TTL_S)
        query = urlencode({"container": container, "expires": expires,
                           "signature": self._sign(conversation_id, container, expires)})
        return f"{self.public_url}/v1/recordings/{conversation_id}?{query}"

    def verify(self, conversation_id: str, container: str, expires: int, signature: str,
               now: float | None = None) -> bool:
        if expires < (now or time.time()):
            return False
        expected = self._sign(conversation_id, container, expires)
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))

    def voice_url(self, voice_id: str, now: float | None = None) -> str:
        """A week-long link to a short sample of ``voice_id``."""
        expires = int((now or time.time()) + VOICE_LINK_TTL_S)
        # "voice:" cannot begin a conversation id, so the two link kinds never collide.
        query = urlencode({"expires": expires,
                           "signature": self._sign(f"voice:{voice_id}", "wav", expires)})
        return f"{self.public_url}/v1/voices/{voice_id}/preview?{query}"

    def verify_voice(self, voice_id: str, expires: int, signature: str,
                     now: float | None = None) -> bool:
        return self.verify(f"voice:{voice_id}", "wav", expires, signature, now)


class RecordingStore:
    """Finished recordings in the configured blob store, readable from any node.

    Calls record into ``spool`` (raw tracks flushed every second, then the WAV); once a
    call's end is stored, ``archive`` moves the WAV into the store and records its
    location. A spool every node can reach (the shared recordings directory itself, or a
    shared ``OPENLINE_RECORDINGS_SPOOL``) lets the node that closes a crashed node's call
    recover its recording up to the last flushed second.
    """

    def __init__(self, blobs: BlobStore, spool: Path) -> None:
        self.blobs, self.spool = blobs, spool

    async def archive(self, db: Database, conversation_id: str) -> None:
        """Move the conversation's WAV from the spool to the store (idempotent)."""
        async with db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            stored = row.recording_path if row is not None else None
        if not stored or "://" in stored:
            return
        path = Path(stored)
        if not await asyncio.to_thread(path.exists):
            return
        location = await self.blobs.put_file(path.name, path)
        if location != stored:
            async with db.session() as s:
                row = await s.get(t.Conversation, conversation_id)
                if row is not None:
                    row.recording_path = location

    async def read(self, location: str) -> bytes | None:
        """The WAV at ``location`` (a path or ``s3://`` URL), from whichever store."""
        if "://" not in location:
            return await DirectoryBlobs(Path(location).parent).read(location)
        return await self.blobs.read(location)

    @contextlib.asynccontextmanager
    async def local_file(self, location: str | None) -> AsyncIterator[Path | None]:
        """A local path to read the recording from (downloaded for the block if remote)."""
        if not location or "://" not in location:
            yield Path(location) if location else None
            return
        data = await self.read(location)
        if data is None:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="openline-rec-") as tmp:
            path = Path(tmp) / "recording.wav"
            await asyncio.to_thread(path.write_bytes, data)
            yield path
