"""``openline chat AGENT``: talk to an agent in the terminal (text; same reply engine)."""

from __future__ import annotations

import asyncio
import sys

from openline.boot.providers import build_llm
from openline.boot.root import database_for
from openline.services.agents import AgentService
from openline.services.auth import AuthService
from openline.services.principal import Principal
from openline.services.session_config import resolve
from openline.settings import Settings
from openline.voice.text import TextSession

PROMPT = "you> "


async def chat(settings: Settings, agent: str, project: str | None) -> int:
    db = database_for(settings)
    try:
        await db.migrate()
        auth = AuthService(db)
        await auth.bootstrap()
        ws = await auth.default_workspace()
        found = await AgentService(db).get(Principal(ws.id, ws.name), project, agent)
        voice = found.spec.voice_id
        resolved = resolve("chat", found.spec.model_dump(mode="json"), {},
                           installed_voices={voice}, default_voice=voice)
    finally:
        await db.dispose()
    print("loading the language model...", flush=True)
    llm = build_llm(settings)
    await llm.load()
    session = TextSession(resolved.session, llm)
    print(f"Chatting with {agent!r}. Empty line or Ctrl-D to quit.\n", flush=True)
    if resolved.session.welcome_message:
        print(f"{agent}> {resolved.session.welcome_message}")
    while not session.ended:
        line = await asyncio.to_thread(_read_line)
        if not line:
            break
        print(f"{agent}> ", end="", flush=True)
        async for sentence in session.turn(line):
            print(sentence, end=" ", flush=True)
        print()
    await llm.aclose()
    return 0


def _read_line() -> str:
    try:
        return input(PROMPT).strip()
    except EOFError:
        return ""


def run(settings: Settings, agent: str, project: str | None) -> int:
    try:
        return asyncio.run(chat(settings, agent, project))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
