"""Process configuration from ``OPENLINE_*`` environment variables.

Only the edges (``api``, ``cli``) read settings; everything below them receives options.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of an Openline process, with embedded defaults."""

    model_config = SettingsConfigDict(env_prefix="OPENLINE_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("openline")))
    database_url: str | None = None
    public_url: str | None = None
    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    phone_number_pool: str | None = None
    secret_key: str | None = None
    log_level: str = "info"
    # --- models (the embedded defaults need none of these) ---
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_gguf: Path | None = None
    stt_model_dir: Path | None = None
    voices_dir: Path | None = None
    default_voice: str = "joe"
    #: let webhooks / configuration endpoints reach loopback and private networks
    allow_private_urls: bool = False
    # --- post-call work (job queue, analysis, event webhooks) ---
    #: a larger faster-whisper model for post-call transcripts (default: the live one)
    postcall_stt_model_dir: Path | None = None
    postcall_summary: bool = True
    job_concurrency: int = 2
    job_lease_s: float = 120.0
    job_poll_s: float = 1.0
    #: first retry delay; doubles per attempt (capped at ``job_retry_max_s``)
    job_retry_base_s: float = 2.0
    job_retry_max_s: float = 600.0
    job_max_attempts: int = 4
    webhook_max_attempts: int = 8
    webhook_timeout_s: float = 10.0
    #: REST request bodies above this many bytes are refused with 413 before being read
    max_body_bytes: int = 1024 * 1024
    # --- several nodes on one database ---
    #: this process's name in conversation leases (default: host-pid-random)
    node_id: str | None = None
    #: a live conversation's lease; its node renews it three times per period
    conversation_lease_s: float = 30.0

    def recordings_dir(self) -> Path:
        return self.ensure_data_dir() / "recordings"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def effective_public_url(self) -> str:
        """Base URL put in links the server hands out (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def effective_secret_key(self) -> str:
        """Signing key for expiring links: set, or generated once into the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.ensure_data_dir() / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()
