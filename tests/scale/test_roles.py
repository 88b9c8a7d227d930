"""What each process role runs (``serve --role api|media|all``, ``worker``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openline.boot.root import build_runtime
from openline.boot.scale import role_of
from openline.services.call_setup import StartCall
from openline.services.live import Draining
from openline.services.principal import Principal
from openline.settings import Settings
from tests.conftest import fake_providers


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db",
                    **kw)  # type: ignore[arg-type]


def test_with_redis_jobs_run_only_in_workers(tmp_path: Path) -> None:
    embedded, scaled = _settings(tmp_path), _settings(tmp_path, redis_url="redis://x")
    assert role_of("all", embedded).runs_jobs and not role_of("all", scaled).runs_jobs
    assert role_of("worker", scaled).runs_jobs and not role_of("worker", scaled).takes_calls
    assert not role_of("api", scaled).takes_calls and role_of("media", scaled).takes_calls
    with pytest.raises(ValueError, match="unknown role"):
        role_of("everything", embedded)


async def test_an_api_node_serves_rest_loads_only_voices_and_refuses_calls(
        tmp_path: Path) -> None:
    providers = fake_providers()
    runtime = build_runtime(_settings(tmp_path), providers, role="api")
    await runtime.start(verbose=False)
    try:
        assert providers.tts.loaded and not providers.stt.loaded and not providers.llm.loaded
        assert runtime.services.ops is not None
        assert await runtime.services.ops.ready() == {
            "database": True, "models": True, "accepting_calls": True}
        ws = await runtime.services.auth.default_workspace()
        with pytest.raises(Draining, match="REST API only"):
            await runtime.services.live.open(StartCall(Principal(ws.id, ws.name)),
                                             transport=None)  # type: ignore[arg-type]
        await runtime.drain(0.1)  # SIGTERM: not ready any more
        assert (await runtime.services.ops.ready())["accepting_calls"] is False
    finally:
        await runtime.stop()


async def test_embedded_metrics_read_the_database_queue(tmp_path: Path) -> None:
    runtime = build_runtime(_settings(tmp_path), fake_providers())  # no Redis: one node
    await runtime.db.migrate()
    try:
        ops = runtime.services.ops
        assert ops is not None
        await runtime.postcall.queue.enqueue("postcall.conversation", {"conversation_id": "c"})
        await runtime.postcall.queue.enqueue("postcall.conversation", {"conversation_id": "d"},
                                             delay_s=60)  # not due: not waiting
        text = (await ops.render()).decode()
        assert "openline_job_queue_depth 1.0" in text and "openline_live_calls 0.0" in text
        assert "openline_webhook_delivery_failures_total 0.0" in text
    finally:
        await runtime.db.dispose()
