"""A live server with real speech models, Debian's Chromium driven by Playwright, and
helpers to sign in and to seed what the pages show."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from sqlalchemy import select

from openline.boot.providers import build_providers
from openline.domain import ids
from openline.providers.testing import ScriptedLLM
from openline.services.auth import hash_secret
from openline.settings import Settings
from openline.store import tables as t
from openline.store.db import Database
from tests.conftest import LiveServer, start_server
from tests.seed import seed_conversations

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SENTENCE = "Can you tell me when the library opens on Saturday?"
T = TypeVar("T")
REPLY = "The library opens at nine in the morning on Saturday."


@pytest.fixture(scope="module")
def llm() -> ScriptedLLM:
    return ScriptedLLM(fallback=REPLY)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[LiveServer]:
    """Real VAD, recogniser and voices (what the browser's microphone meets); a scripted
    LLM, so the reply is known."""
    data = tmp_path_factory.mktemp("dashboard")
    providers = dataclasses.replace(build_providers(Settings(data_dir=data)), llm=llm)
    # One attempt per webhook message, so a failed delivery stays failed until "Resend".
    live = start_server(f"sqlite+aiosqlite:///{data / 'dash.db'}", data, providers,
                        webhook_max_attempts=1, job_poll_s=0.1)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/v1", timeout=30,
                      headers={"Authorization": f"Bearer {server.api_key}"}) as client:
        yield client


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake microphone's file: espeak-ng saying SENTENCE, with silence around it so
    the turn ends before the file loops."""
    folder = tmp_path_factory.mktemp("mic")
    raw, padded = folder / "raw.wav", folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE],
                   check=True)
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(padded),
                    "pad", "0.8", "6"], check=True)
    return padded


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright, speech_wav: Path) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-audio-capture={speech_wav}",
              "--autoplay-policy=no-user-gesture-required"])
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser, server: LiveServer) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=server.url, viewport={"width": 1360, "height": 900})
    ctx.grant_permissions(["microphone"], origin=server.url)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield tab
    # A Content-Security-Policy violation or a script error is a failure of the page.
    assert not [e for e in errors if "Content Security Policy" in e], errors


def sign_in(page: Page, api_key: str) -> None:
    page.goto("/dashboard/agents")
    page.fill("#api_key", api_key)
    page.click("#sign-in")
    page.wait_for_url("**/dashboard/agents")


def wait_until(page: Page, expression: str, timeout_s: float = 30.0) -> None:
    """Poll a script expression (``page.wait_for_function`` evaluates strings inside the
    page, which its Content-Security-Policy rightly refuses)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stereo_wav(path: Path, seconds: float) -> None:
    """A stereo 16 kHz recording: a tone on the caller's side, another on the agent's."""
    n = int(16000 * seconds)
    tt = np.arange(n) / 16000
    left = (0.3 * np.sin(2 * np.pi * 440 * tt) * 32767).astype(np.int16)
    right = (0.3 * np.sin(2 * np.pi * 660 * tt) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.stack([left, right], axis=1).tobytes())


async def _attach_recording(database_url: str, conversation_id: str, path: Path) -> None:
    db = Database(database_url)
    try:
        async with db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            assert row is not None
            row.recording_path = str(path)
    finally:
        await db.dispose()


def off_loop(work: Callable[[], T]) -> T:
    """Run ``work`` (which starts its own event loop) on another thread: Playwright's sync
    API keeps a loop running on this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def attach_recording(database_url: str, conversation_id: str, path: Path) -> None:
    off_loop(lambda: asyncio.run(_attach_recording(database_url, conversation_id, path)))


async def _other_workspace(database_url: str) -> str:
    """A second workspace (project ``main``) with an API key; returns the key."""
    db = Database(database_url)
    secret = "ol_other_" + uuid.uuid4().hex
    try:
        async with db.session() as s:
            ws = t.Workspace(id=ids.new_id(ids.WORKSPACE), name=unique("other"), settings={})
            s.add(ws)
            await s.flush()
            s.add(t.Project(id=ids.new_id(ids.PROJECT), workspace_id=ws.id, name="main"))
            s.add(t.ApiKey(id=ids.new_id(ids.API_KEY), workspace_id=ws.id, name="other",
                           key_hash=hash_secret(secret), prefix=secret[:7]))
            assert await s.scalar(select(t.Workspace).where(t.Workspace.id == ws.id))
    finally:
        await db.dispose()
    return secret


def other_workspace(database_url: str) -> str:
    return off_loop(lambda: asyncio.run(_other_workspace(database_url)))


def seed(database_url: str, rows: list[dict[str, Any]]) -> list[str]:
    """``tests.seed.seed_conversations`` into project ``main``, off Playwright's loop."""
    return off_loop(lambda: seed_conversations(database_url, "main", rows))
