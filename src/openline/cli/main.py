"""``openline`` command line: serve, worker, keys, chat and call."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from openline.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from openline.boot.server import create_app

    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    app = create_app(settings)
    print(f"Openline {settings.effective_public_url()} (data: {settings.data_dir})", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                # base64 audio barely compresses: per-message deflate only costs CPU
                ws_per_message_deflate=False)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from openline.boot.worker import run_worker

    asyncio.run(run_worker(settings))
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from openline.boot.root import database_for
    from openline.services.auth import AuthService

    async def run() -> int:
        db = database_for(settings)
        try:
            await db.migrate()
            auth = AuthService(db)
            first = await auth.bootstrap()
            ws = await auth.default_workspace()
            if args.action == "create":
                key = first if first is not None else await auth.create_key(ws.id, args.name)
                print(f"{key.id}\t{key.name}\t{key.secret}")
                if args.dashboard:  # a one-time sign-in link for the web dashboard
                    print(await _login_link(db, auth, settings, ws.id, key.id))
            elif args.action == "list":
                for row in await auth.list_keys(ws.id):
                    state = "revoked" if row.revoked_at else "active"
                    print(f"{row.id}\t{row.name}\t{row.prefix}...\t{state}")
            else:
                await auth.revoke_key(ws.id, args.key_id)
                print(f"revoked {args.key_id}")
            return 0
        finally:
            await db.dispose()

    return asyncio.run(run())


async def _login_link(db: Any, auth: Any, settings: Settings, workspace_id: str,
                      key_id: str) -> str:
    from openline.services.dashboard import LINK_TTL, DashboardService

    token = await DashboardService(db, auth).create_login_link(workspace_id, key_id)
    base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    minutes = int(LINK_TTL.total_seconds() // 60)
    return f"{base}/dashboard/login/link?token={token}\t(signs in once, within {minutes} min)"


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    from openline.cli import chat

    return chat.run(settings, args.agent, args.project)


def _call(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from openline.cli import call

    if args.port:
        settings.port = args.port
    return call.run(settings, args.agent, Path(args.input), Path(args.output), args.url,
                    args.api_key or settings.api_key)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API and real-time server")
    serve.add_argument("--host", help="bind address (default 127.0.0.1 or OPENLINE_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000 or OPENLINE_PORT)")
    sub.add_parser("worker", help="run post-call jobs and webhooks only (no calls, no HTTP)")
    keys = sub.add_parser("keys", help="manage API keys of the default workspace")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", default="cli")
    create.add_argument("--dashboard", action="store_true",
                        help="also print a one-time sign-in link for the web dashboard")
    keys_sub.add_parser("list", help="list keys (secrets are never shown again)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    chat = sub.add_parser("chat", help="text conversation with an agent in the terminal")
    chat.add_argument("agent")
    chat.add_argument("--project", default=None)
    call = sub.add_parser("call", help="play a WAV file as the caller over the WebSocket")
    call.add_argument("agent")
    call.add_argument("--input", required=True, help="caller audio (WAV)")
    call.add_argument("--output", required=True, help="stereo WAV of both sides")
    call.add_argument("--url", help="a running server (default: start one in-process)")
    call.add_argument("--api-key", help="API key for --url (default OPENLINE_API_KEY)")
    call.add_argument("--port", type=int, help="port of the in-process server")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``openline`` console script."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    handlers = {"serve": _serve, "worker": _worker, "keys": _keys, "chat": _chat, "call": _call}
    try:
        return handlers[args.command](args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the CLI prints errors instead of tracebacks
        from openline.domain.errors import OpenlineError

        if isinstance(exc, OpenlineError):
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
