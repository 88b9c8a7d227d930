"""Expiring signed links to recordings and voice previews (served by Openline itself)."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

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
