"""The resolved settings of one live conversation (agent defaults + per-call overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from openline.audio.codecs import WIRE_FORMATS, AudioFormat
from openline.voice.acknowledgements import ACKNOWLEDGEMENT_WORDS, INTERRUPTION_CUES
from openline.voice.backchannel import BackchannelSettings
from openline.voice.end_of_turn import EndOfTurnPolicy, TranscriptWaits
from openline.voice.endpointing_rules import EndpointingRule
from openline.voice.languages import LanguageSettings
from openline.voice.tools import RuntimeTool
from openline.voice.turns import TurnSettings


@dataclass
class SessionConfig:
    """Everything the engine needs to run a conversation; built by the service layer."""

    conversation_id: str
    system_prompt: str = "Respond in 1-2 sentences."
    welcome_message: str = ""
    generate_welcome_message: bool = False
    is_welcome_message_interruptible: bool = True
    voice_id: str = "joe"
    audio_speed: float = 1.0
    input_format: AudioFormat = WIRE_FORMATS["pcm_16000"]
    output_format: AudioFormat = WIRE_FORMATS["pcm_16000"]
    turn: TurnSettings = field(default_factory=TurnSettings)
    #: the semantic end-of-turn decision (used when the providers have a turn model);
    #: None: the fixed silence only
    end_of_turn: EndOfTurnPolicy | None = field(default_factory=EndOfTurnPolicy)
    #: with no end-of-turn model: the silence by how the transcript ends (Vapi's
    #: ``transcriptionEndpointingPlan``); None: the fixed silence
    transcript_waits: TranscriptWaits | None = None
    #: silences set by what was said, ahead of everything above (Vapi's
    #: ``customEndpointingRules``; voice/endpointing_rules.py)
    endpointing_rules: tuple[EndpointingRule, ...] = ()
    min_words_to_interrupt: int = 1
    #: voiced time before user speech interrupts the assistant (echo / "uh-huh" guard)
    min_interruption_ms: int = 250
    #: voiced time from which caller speech over the assistant interrupts whatever its words;
    #: between min_interruption_ms and this, acknowledgements ("uh-huh") do not interrupt
    #: (voice/acknowledgements.py). At or below min_interruption_ms: every sound interrupts.
    backchannel_max_ms: int = 900
    #: after a barge-in, the assistant starts no utterance for this long (Vapi's
    #: ``stopSpeakingPlan.backoffSeconds``)
    interruption_backoff_ms: int = 0
    #: words an acknowledgement is made of, and the words that open an interruption
    #: (voice/acknowledgements.py; Vapi's ``acknowledgementPhrases`` / ``interruptionPhrases``)
    acknowledgement_words: frozenset[str] = ACKNOWLEDGEMENT_WORDS
    interruption_cues: frozenset[str] = INTERRUPTION_CUES
    no_input_poke_sec: int | None = None
    no_input_poke_text: str = "Are you still there?"
    generate_no_input_poke_text: bool = False
    no_input_end_conversation_sec: int = 180
    boosted_keywords: tuple[str, ...] = ()
    #: without boosted keywords, offer the recogniser the agent's own vocabulary
    #: (voice/vocabulary.py: names, enum values, tool words from the prompt, welcome, tools)
    auto_vocabulary: bool = True
    language: str | None = "en"
    background_noise: str | None = None
    background_noise_level: float = 0.0
    stream_ahead_of_real_time: bool = False
    push_to_talk: bool = False
    #: built-in tools the model may call (``natural_conversation_ending`` ...)
    built_in_tools: tuple[str, ...] = ()
    #: the agent's and the client's tools, as the tool runtime runs them
    runtime_tools: list[RuntimeTool] = field(default_factory=list)
    max_reply_tokens: int = 160
    # --- agent fields with an engine effect (pronunciation, languages, listen-only,
    # backchannels): see voice/pronunciation.py, languages.py, listen_only.py, backchannel.py
    #: ``(word, pronunciation)`` pairs respelled before synthesis
    pronunciation_dictionary: tuple[tuple[str, str], ...] = ()
    languages: LanguageSettings = field(default_factory=LanguageSettings)
    #: an incoming call of a listen-only agent: greet, then transcribe without replying
    listen_only: bool = False
    backchannel: BackchannelSettings = field(default_factory=BackchannelSettings)
    # --- call limits a dialect may set (the Vapi assistant's maxDurationSeconds,
    # endCallPhrases, endCallMessage); the Phonic agent has no such fields
    #: the call ends (``max_duration``) this long after the engine starts; None: no limit
    max_duration_s: float | None = None
    #: an assistant utterance containing one of these (whole words, any case) ends the call
    #: once it has been heard (``end_call_phrase``)
    end_call_phrases: tuple[str, ...] = ()
    #: said before the assistant ends the call (end-call tool or phrase); "": nothing
    end_call_message: str = ""


@dataclass(frozen=True)
class AgentSwitch:
    """What changes when ``built_in_transfer_to_agent`` hands the call to another agent."""

    agent_id: str
    agent_name: str
    system_prompt: str
    voice_id: str
    audio_speed: float
    built_in_tools: tuple[str, ...]
    runtime_tools: list[RuntimeTool]


class AgentDirectory(Protocol):
    """Looks up a transfer target's configuration (the service layer implements it)."""

    async def switch_to(self, agent_name: str) -> AgentSwitch: ...
