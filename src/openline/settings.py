"""Process configuration from ``OPENLINE_*`` environment variables.

Only the edges (``api``, ``cli``) read settings; everything below them receives options.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

#: The data directory holds webhook secrets, tool headers and recordings: owner only.
DIR_MODE, FILE_MODE = 0o700, 0o600


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
    #: simultaneous replies of the embedded llama.cpp model (its slots, batched together);
    #: 1 serves one conversation's reply at a time (more slots: docs/benchmarks.md)
    llm_parallel: int = Field(default=1, ge=1, le=32)
    #: conversations whose transcript the embedded model keeps cached between their turns
    #: (one llama.cpp slot each, ~37 MB apiece): a call's next turn then processes only
    #: its new words (first token ~115 ms instead of 300-500 with four calls taking turns)
    llm_prompt_caches: int = Field(default=8, ge=1, le=64)
    #: CPU threads of the embedded llama.cpp model; None: half the CPUs this process may
    #: use, 1-2 (boot/providers.py ``llm_thread_count``), so the LLM and Piper, which overlap
    #: in every reply, each keep a core. On 2 cores one thread instead of two took 8
    #: simultaneous conversations from p50 3.9 s to 1.6 s at no cost to one alone
    #: (docs/benchmarks.md "Embedded concurrency")
    llm_threads: int | None = Field(default=None, ge=1, le=256)
    #: CPU threads of the embedded model's prompt steps (a caller's new line, a persona:
    #: many tokens at once); None: ``llm_threads``. Two beside one generating thread help
    #: a conversation alone on 2 cores (first token ~90 -> ~60 ms) and hurt under load
    #: (docs/benchmarks.md "Embedded concurrency"), so they are not the default
    llm_batch_threads: int | None = Field(default=None, ge=1, le=256)
    #: the embedded model's sampling seed (None: a fresh one per reply). Fixed, the same
    #: conversation gets the same replies (benchmarks/turn_taking.py: runs of different
    #: code compare like for like; the replies set the first clause and so the latency)
    llm_seed: int | None = Field(default=None, ge=0)
    stt_model_dir: Path | None = None
    #: CPU threads per faster-whisper recognition. Two as before: one was no faster for a
    #: conversation alone on 2 cores (615 and 797 ms against 687-727) and slower at 8
    #: (2.0-2.6 s against 1.6-1.7 s; docs/benchmarks.md "Embedded concurrency")
    stt_threads: int = Field(default=2, ge=1, le=64)
    voices_dir: Path | None = None
    default_voice: str = "joe"
    #: onnxruntime threads per Piper synthesis. One: the first clause is synthesised while
    #: the embedded LLM writes on; on two cores it then comes out sooner than on two
    #: threads (embedded voice-to-voice p50 537-549 against 651 ms, and at 8 conversations
    #: 2.3 against 3.0-3.2 s; at 4 conversations 1.1-1.2 against 0.8-0.9 s: docs/benchmarks.md)
    tts_threads: int = Field(default=1, ge=1, le=16)
    #: megabytes of synthesised audio kept for short texts spoken again (a reply's first
    #: clause, a welcome message: providers/tts/cache.py); 0: synthesise every time
    tts_cache_mb: int = Field(default=16, ge=0, le=4096)
    # --- end of turn (issue 13: semantic end-of-turn decision, voice/end_of_turn.py) ---
    #: use the Smart Turn model of the installed pipecat-ai wheel when it is there; false:
    #: every turn ends on the agent's fixed VAD silence
    end_of_turn_model: bool = True
    #: also ask the embedded language model whether the words end a turn (a "complete"
    #: from the audio model is overruled when they do not: providers/vad/text_turn.py).
    #: Off by default: on two cores a check took 130-330 ms next to the recogniser and the
    #: audio model, and voice-to-voice p50 went from 452 to 688 ms (docs/benchmarks.md)
    end_of_turn_text_model: bool = False
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
    # --- scale-out: many nodes on PostgreSQL and Redis (issue 16) ---
    #: Redis for the cross-node live registry, control channel and job queue (None: one node)
    redis_url: str | None = None
    #: prefix of every Redis key and channel this deployment uses (several may share a Redis)
    redis_prefix: str = "openline"
    #: live conversations per workspace unless the workspace overrides it
    max_concurrent_conversations: int = 100
    #: where recordings live: a directory (default: <data dir>/recordings) or s3://bucket/prefix
    recordings_url: str | None = None
    #: where calls record while they run (default: the recordings directory, or for S3
    #: <data dir>/recordings); shared storage lets other nodes recover a crashed node's calls
    recordings_spool: Path | None = None
    #: S3-compatible endpoint for ``s3://`` recordings (default: AWS), region and keys
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    #: where the other nodes reach this one (reconnect relay); default http://host:port
    node_url: str | None = None
    #: SIGTERM: how long live calls may run on before they are ended
    drain_timeout_s: float = 60.0
    # --- Twilio (phone calls; off unless the account SID and auth token are set) ---
    twilio_account_sid: str | None = None
    #: signs Twilio's webhooks (and authenticates REST calls unless an API key is given)
    twilio_auth_token: str | None = None
    #: optional API key for REST calls (SK...); webhooks are still signed with the token
    twilio_api_key_sid: str | None = None
    twilio_api_key_secret: str | None = None
    #: Twilio's REST API, or any Twilio-compatible one (tests point it at a local fake)
    twilio_api_base: str = "https://api.twilio.com"
    # --- Phonic dialect, complete: data retention, replay, socket JWTs (issue 14) ---
    #: how often the scheduled job deletes transcripts and recordings past their retention
    retention_sweep_s: float = 300.0
    #: replays running at once on this node (more are answered 503)
    max_concurrent_replays: int = 4
    #: the ``aud`` a customer-signed socket JWT must carry unless its key names another
    socket_jwt_audience: str = "openline"
    # --- Vapi dialect, live calls (server-URL messages) ---
    #: the org's server URL: ``assistant-request`` for Vapi calls that name no assistant
    vapi_server_url: str | None = None
    #: sent with the org server's messages as ``X-Vapi-Secret``
    vapi_server_secret: str | None = None
    #: a ``vapi.websocket`` call whose client has not connected by then ends unstarted
    vapi_socket_wait_s: float = 60.0
    #: a tool's server still silent after this long gets a ``hang`` message out
    vapi_hang_after_s: float = 5.0
    # --- SIP (Openline's own SIP endpoint; off unless sip_port is set) ---
    sip_host: str = "127.0.0.1"
    #: UDP port of the SIP endpoint (0: any free port); unset: no SIP endpoint
    sip_port: int | None = None
    #: the address put in Via, Contact and SDP when behind NAT (default: sip_host)
    sip_public_ip: str | None = None
    #: RTP port range ``LOW-HIGH`` (even ports for RTP, RTCP on the next); unset: ephemeral
    rtp_ports: str | None = None
    #: comma-separated CIDRs/addresses whose INVITEs are answered without digest (trunks)
    sip_allow: str | None = None
    #: digest credentials asked of every other source (unset: such INVITEs get 403)
    sip_inbound_username: str | None = None
    sip_inbound_password: str | None = None
    #: an outbound SIP call ringing this long is cancelled (no answer)
    sip_ring_timeout_s: float = 30.0

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    def recordings_dir(self) -> Path:
        return self.ensure_data_dir() / "recordings"

    def ensure_data_dir(self) -> Path:
        """Create the data directory owner-only (0700) and the SQLite database file 0600
        before SQLite opens it (SQLite gives its -wal/-shm files the database's mode); an
        older install's looser modes are tightened."""
        private_dir(self.data_dir)
        database = self.sqlite_path()
        if database is not None and database.parent.is_dir():
            private_file(database)
            for extra in ("-wal", "-shm", "-journal"):
                tighten(database.with_name(database.name + extra), FILE_MODE)
        tighten(self.data_dir / "secret_key", FILE_MODE)
        return self.data_dir

    def sqlite_path(self) -> Path | None:
        """The SQLite file this process uses (``None`` for PostgreSQL or in-memory)."""
        if self.database_url is None:
            return self.data_dir / "openline.db"
        url = make_url(self.database_url)
        if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
            return None
        return Path(str(url.database))

    def effective_public_url(self) -> str:
        """Base URL put in links the server hands out (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def effective_secret_key(self) -> str:
        """Signing key for expiring links: set, or generated once into the data directory
        (created 0600 in one step: never readable by others, not even for a moment)."""
        if self.secret_key:
            return self.secret_key
        path = self.ensure_data_dir() / "secret_key"
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


def private_dir(path: Path) -> None:
    """``path`` exists and only its owner may enter it."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """``path`` exists (empty if new) and only its owner may read it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    tighten(path, FILE_MODE)


def tighten(path: Path, mode: int) -> None:
    """Drop group/other permission bits of ``path`` if it exists and is ours."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    owned = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    if owned and info.st_mode & 0o077:
        path.chmod(info.st_mode & mode & 0o777)
