"""The ``openline`` console script: first start prints a working key; ``keys`` manages keys;
``call`` plays a WAV file to a running server (and fails cleanly when there is none)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from openline.audio.wav import read_wav, write_wav
from openline.providers.testing import ScriptedLLM
from tests.conftest import LiveServer, fake_providers, free_port, start_server

OPENLINE = [sys.executable, "-m", "openline.cli.main"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    env["OPENLINE_DATA_DIR"] = str(data_dir)
    return env


def test_serve_first_start_prints_a_working_key(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*OPENLINE, "serve", "--port", str(port)], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        key = None
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while key is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            match = re.search(r"API key \(shown once, keep it safe\): (\S+)", line)
            key = match.group(1) if match else None
        assert key, "no API key printed"
        for _ in range(100):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/projects",
                              headers={"Authorization": f"Bearer {key}"})
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert r.status_code == 200
        assert [p["name"] for p in r.json()["projects"]] == ["main"]
        assert (tmp_path / "openline.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    def run(*args: str) -> str:
        out = subprocess.run([*OPENLINE, "keys", *args], env=_env(tmp_path), check=True,
                             capture_output=True, text=True, timeout=60)
        return out.stdout

    first = run("create", "--name", "one").split("\t")
    second = run("create", "--name", "two").split("\t")
    assert first[0].startswith("api_key_") and second[1] == "two"
    listed = run("list")
    assert first[0] in listed and second[0] in listed
    assert second[2].strip() not in listed  # secrets are never shown again
    run("revoke", second[0])
    assert f"{second[0]}\ttwo" in run("list") and "revoked" in run("list")
    bad = subprocess.run([*OPENLINE, "keys", "revoke", "api_key_nope"], env=_env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "not found" in bad.stderr


@pytest.fixture
def call_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'call.db'}", tmp_path / "server",
                          fake_providers(llm=ScriptedLLM(fallback="Hello there, how can I help?")))
    yield server
    server.stop()


def _caller_wav(path: Path, seconds: float = 1.2) -> Path:
    t = np.arange(int(16_000 * seconds)) / 16_000
    write_wav(path, (np.sin(2 * np.pi * 440 * t) * 9000).astype(np.int16), 16_000)
    return path


def _call(tmp_path: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OPENLINE, "call", *args], env=_env(tmp_path / "cli"),
                          capture_output=True, text=True, timeout=timeout)


def test_call_returns_after_the_reply_and_ends_the_conversation(
        call_server: LiveServer, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {call_server.api_key}"}
    created = httpx.post(f"{call_server.url}/v1/agents", headers=auth,
                         json={"name": "cli-caller", "voice_id": "joe", "welcome_message": ""})
    assert created.status_code == 201, created.text
    wav_in, wav_out = _caller_wav(tmp_path / "caller.wav"), tmp_path / "out.wav"
    start = time.monotonic()
    proc = _call(tmp_path, "cli-caller", "--url", call_server.url, "--api-key",
                 call_server.api_key, "--input", str(wav_in), "--output", str(wav_out))
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    # 1.2 s of audio, the reply, 2 s of quiet: well inside the 8 s reply / 60 s caps.
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert "User: hello" in proc.stdout and "Assistant: Hello there" in proc.stdout
    match = re.search(r"conversation (\S+) ended by user", proc.stdout)
    assert match, proc.stdout
    conv = httpx.get(f"{call_server.url}/v1/conversations/{match.group(1)}",
                     headers=auth).json()["conversation"]
    assert conv["ended_by"] == "user" and conv["ended_at"] is not None
    samples, rate = read_wav(wav_out)
    assert rate == 16_000 and samples.shape[1] == 2
    assert np.abs(samples[:, 1].astype(np.int32)).max() > 1000  # the assistant was heard


def test_call_without_a_server_prints_one_line(tmp_path: Path) -> None:
    wav_in = _caller_wav(tmp_path / "caller.wav")
    port = free_port()  # nothing listens there
    proc = _call(tmp_path, "any", "--url", f"http://127.0.0.1:{port}", "--api-key", "k",
                 "--input", str(wav_in), "--output", str(tmp_path / "out.wav"), timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot connect to http://127.0.0.1:{port}")
    assert "openline serve" in lines[0]
    assert not (tmp_path / "out.wav").exists()


def test_call_with_a_missing_input_file(call_server: LiveServer, tmp_path: Path) -> None:
    proc = _call(tmp_path, "any", "--url", call_server.url, "--api-key", call_server.api_key,
                 "--input", str(tmp_path / "nope.wav"), "--output", str(tmp_path / "o.wav"),
                 timeout=30)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: cannot read the caller audio")


def test_call_with_a_wrong_key_is_refused(call_server: LiveServer, tmp_path: Path) -> None:
    proc = _call(tmp_path, "any", "--url", call_server.url, "--api-key", "ol_wrong",
                 "--input", str(_caller_wav(tmp_path / "c.wav")), "--output",
                 str(tmp_path / "o.wav"), timeout=30)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: the server at {call_server.url} refused the call: "
                                   "HTTP 401 (check --api-key)")
