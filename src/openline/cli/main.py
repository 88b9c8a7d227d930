"""``openline`` command line: serve, worker, keys, chat and call."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from openline.settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from openline.boot.server import serve

    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    print(f"Openline {settings.effective_public_url()} (data: {settings.data_dir}, "
          f"role: {args.role})", flush=True)
    serve(settings, role=args.role)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from openline.boot.worker import run_worker

    asyncio.run(run_worker(settings, handle_signals=True))
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
def _limit(args: argparse.Namespace, settings: Settings) -> int:
    """Show or set the default workspace's concurrency limit (its own override)."""
    from openline.boot.root import database_for
    from openline.services.auth import AuthService
    from openline.services.call_setup import LIMIT_SETTING, workspace_limit
    from openline.store import tables as t

    if args.value not in (None, "default") and not (args.value.isdigit()
                                                    and int(args.value) > 0):
        print("error: the limit is a positive integer or 'default'", file=sys.stderr)
        return 2

    async def run() -> int:
        db = database_for(settings)
        try:
            await db.migrate()
            auth = AuthService(db)
            await auth.bootstrap()
            ws = await auth.default_workspace()
            async with db.session() as s:
                row = await s.get(t.Workspace, ws.id)
                assert row is not None
                if args.value is not None:
                    values = dict(row.settings or {})
                    values.pop(LIMIT_SETTING, None)
                    if args.value != "default":
                        values[LIMIT_SETTING] = int(args.value)
                    row.settings = values
                own = (row.settings or {}).get(LIMIT_SETTING)
                effective = workspace_limit(row, settings.max_concurrent_conversations)
            source = "OPENLINE_MAX_CONCURRENT_CONVERSATIONS" if own is None else "workspace"
            print(f"{effective}\t({source})")
            return 0
        finally:
            await db.dispose()

    return asyncio.run(run())


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
    serve.add_argument("--role", choices=("all", "api", "media"), default="all",
                       help="all: REST and calls (default); api: REST only; media: calls. "
                            "With OPENLINE_REDIS_URL, post-call jobs run in `openline worker`")
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
    limit = sub.add_parser("limit", help="show or set the default workspace's limit of "
                           "live conversations (across all nodes)")
    limit.add_argument("value", nargs="?",
                       help="a positive integer, or 'default' for "
                            "OPENLINE_MAX_CONCURRENT_CONVERSATIONS")
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
    handlers = {"serve": _serve, "worker": _worker, "keys": _keys, "chat": _chat, "call": _call,
                "limit": _limit}
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
