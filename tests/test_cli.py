"""The ``openline`` console script: first start prints a working key; ``keys`` manages keys."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

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
