"""``openline serve`` / ``openline worker`` with the scripted test providers.

The multi-node harness starts its nodes through this module so that they run the real
command paths (``boot.server.serve`` with roles and the SIGTERM drain,
``boot.worker.run_worker``) on deterministic providers instead of the embedded models:

    python -m tests.scale.node serve --role all
    python -m tests.scale.node worker

Settings come from ``OPENLINE_*`` environment variables, as for ``openline``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from openline.boot.server import serve
from openline.boot.worker import run_worker
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM
from openline.settings import Settings
from openline.voice.session import Providers


def providers() -> Providers:
    """Instant fakes: energy VAD, "hello" for every turn, "Okay." for every reply."""
    return Providers(EnergyVAD(), FakeSTT(default="hello"), ScriptedLLM(fallback="Okay."),
                     FakeTTS(ms_per_char=20))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tests.scale.node")
    parser.add_argument("command", choices=("serve", "worker"))
    parser.add_argument("--role", choices=("all", "api", "media"), default="all")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        serve(settings, providers(), role=args.role, verbose=False)
    else:
        asyncio.run(run_worker(settings, providers(), verbose=False, handle_signals=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
