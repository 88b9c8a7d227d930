"""The workspace limit: OPENLINE_MAX_CONCURRENT_CONVERSATIONS, and the CLI override."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from openline.cli.main import main
from tests.conftest import start_server
from tests.scale.harness import Caller


async def test_the_setting_limits_each_workspace(tmp_path: Path) -> None:
    server = await asyncio.to_thread(start_server, f"sqlite+aiosqlite:///{tmp_path / 'l.db'}",
                                     tmp_path, max_concurrent_conversations=2)
    try:
        callers = [await Caller.connect(server.ws_url) for _ in range(3)]
        assert [bool(c.conversation_id) for c in callers] == [True, True, False]
        assert callers[2].seen[-1]["error"]["code"] == "concurrency_limit_reached"
        await callers[0].close()
        for _ in range(100):  # the freed place is given to the next caller
            again = await Caller.connect(server.ws_url)
            if again.conversation_id:
                break
            await again.close()
            await asyncio.sleep(0.05)
        assert again.conversation_id
        for c in [*callers, again]:
            await c.close()
    finally:
        await asyncio.to_thread(server.stop)


def test_the_cli_sets_and_resets_the_workspace_override(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("OPENLINE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OPENLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OPENLINE_MAX_CONCURRENT_CONVERSATIONS", "40")
    assert main(["limit"]) == 0
    assert main(["limit", "7"]) == 0
    assert main(["limit"]) == 0
    assert main(["limit", "default"]) == 0
    assert main(["limit", "zero"]) == 2
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "40\t(OPENLINE_MAX_CONCURRENT_CONVERSATIONS)", "7\t(workspace)", "7\t(workspace)",
        "40\t(OPENLINE_MAX_CONCURRENT_CONVERSATIONS)"]
    assert "positive integer" in out.err
