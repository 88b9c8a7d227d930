"""Secrets at rest: the data directory is owner-only, the database and key files 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from openline.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common default umask (022), under which files would be created 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_data_dir_and_database_file_are_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "openline"
    assert Settings(data_dir=data).ensure_data_dir() == data
    assert mode(data) == 0o700
    assert mode(data / "openline.db") == 0o600


def test_secret_key_file_is_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    key = settings.effective_secret_key()
    assert len(key) >= 48 and settings.effective_secret_key() == key  # made once
    assert mode(tmp_path / "d" / "secret_key") == 0o600


def test_an_older_installs_loose_modes_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "old"
    data.mkdir(mode=0o755)
    for name in ("openline.db", "openline.db-wal", "secret_key"):
        (data / name).write_text("x")
        (data / name).chmod(0o644)
    Settings(data_dir=data).ensure_data_dir()
    assert mode(data) == 0o700
    assert {name: mode(data / name) for name in ("openline.db", "openline.db-wal",
                                                 "secret_key")} == dict.fromkeys(
        ("openline.db", "openline.db-wal", "secret_key"), 0o600)


def test_a_custom_sqlite_path_is_private_too(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    Settings(data_dir=tmp_path / "d", database_url=f"sqlite+aiosqlite:///{db}").ensure_data_dir()
    assert mode(db) == 0o600
    postgres = Settings(data_dir=tmp_path / "p",
                        database_url="postgresql+asyncpg://u@127.0.0.1/x")
    assert postgres.sqlite_path() is None


def test_the_cli_creates_a_private_install(tmp_path: Path) -> None:
    """What a new user gets: ``openline keys create`` on a fresh data directory."""
    data = tmp_path / "install"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    env["OPENLINE_DATA_DIR"] = str(data)
    subprocess.run([sys.executable, "-m", "openline.cli.main", "keys", "create"], env=env,
                   check=True, capture_output=True, timeout=60)
    assert mode(data) == 0o700
    files = [p for p in data.iterdir() if p.name.startswith("openline.db")]
    assert data / "openline.db" in files and (data / "openline.db").stat().st_size > 0
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
