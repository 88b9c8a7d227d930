"""Agent fields whose effect is decided per conversation: the languages the installed
models can honour (and a voice for each), listen-only incoming calls, the pronunciation
dictionary and backchannels.

``apply`` completes a resolved configuration (``session_config``) with them. What the
models cannot honour is not silently dropped: each language left out gets a warning the
socket sends as ``language_not_supported`` (agent create/update refuse it outright; see
``services.agents``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from openline.domain.agent import AgentSpec
from openline.domain.languages import (
    STT_MODEL_HINT,
    LanguageSupport,
    agent_languages,
    language_errors,
    language_name,
    voices_per_language,
)
from openline.domain.templating import render, system_variables
from openline.voice.backchannel import BackchannelSettings
from openline.voice.languages import LanguageSettings

if TYPE_CHECKING:  # session_config calls apply()
    from openline.services.session_config import ResolvedConfig

__all__ = ["agent_language_errors", "apply"]


def agent_language_errors(spec: AgentSpec, support: LanguageSupport) -> dict[str, str]:
    """The refusal of an agent asking for languages the recogniser cannot recognise."""
    deprecated = [] if spec.languages == ["en"] else spec.languages  # the default value
    return language_errors(support, spec.default_language, spec.additional_languages,
                           deprecated)


def apply(resolved: ResolvedConfig, support: LanguageSupport, inbound: bool
          ) -> ResolvedConfig:
    """``resolved`` with the engine settings of these fields, and their warnings."""
    spec, session = resolved.spec, resolved.session
    wanted = agent_languages(spec.default_language, spec.additional_languages)
    heard = [c for c in wanted if support.can_recognise(c)]
    notes: list[str] = []
    if len(heard) < len(wanted):
        left_out = [c for c in wanted if c not in heard]
        heard = heard or [support.recognisable[0]]
        notes.append(
            f"The installed speech recogniser cannot recognise "
            f"{', '.join(language_name(c) for c in left_out)}; this conversation uses "
            f"{', '.join(language_name(c) for c in heard)}. To add languages, {STT_MODEL_HINT}.")
    voice_set = [v for v in (spec.voice_id, *spec.additional_voice_ids)
                 if v in support.voice_languages]
    voices = voices_per_language(heard, voice_set, support, session.conversation_id)
    warnings = list(resolved.warnings)
    if voice_set:
        warnings += [f"No voice of this agent speaks {language_name(c)}; "
                     f"{session.voice_id!r} is used for it" for c in heard[1:]
                     if c not in voices]
    voice = voices.get(heard[0], session.voice_id)
    session = dataclasses.replace(
        session, language=heard[0], voice_id=voice,
        languages=LanguageSettings(tuple(heard), spec.multilingual_mode, tuple(voices.items())),
        pronunciation_dictionary=tuple((e.word, e.pronunciation)
                                       for e in spec.pronunciation_dictionary),
        backchannel=BackchannelSettings(spec.enable_assistant_backchannel,
                                        spec.assistant_backchannel_aggressiveness))
    snapshot = {**resolved.snapshot, "voice_id": voice}
    if inbound and spec.listen_only_inbound_enabled:
        values = {**snapshot.get("template_variables", {}), **system_variables(spec.timezone)}
        greeting = render(spec.listen_only_inbound_message or "", values)
        session = dataclasses.replace(
            session, listen_only=True, welcome_message=greeting, generate_welcome_message=False,
            is_welcome_message_interruptible=False, no_input_poke_sec=None)
        snapshot.update(listen_only=True, welcome_message=greeting)
    return dataclasses.replace(resolved, session=session, snapshot=snapshot, warnings=warnings,
                               language_warnings=[*resolved.language_warnings, *notes])
