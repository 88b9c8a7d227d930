"""The agent: its configuration, documented defaults and validation rules.

``AgentSpec`` is the validated configuration of an agent (everything an agent can be
told, except which phone numbers it answers: see ``domain.phone_number``). Its field
names are Openline's own and also the stored JSON keys; each API dialect translates its
wire body into them. Defaults follow the Phonic seed docs, and the OpenAPI spec where
the seeds say nothing. ``Agent`` is a stored agent (identity + configuration + numbers);
``domain.agent_changes`` holds partial updates.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from openline.domain.limits import (
    JSON_CHECK,
    MAX_AGENT_TOOLS,
    MAX_HEADERS,
    MAX_KEYWORDS,
    MAX_PHONE_NUMBERS,
    MAX_REFERENCES,
    MAX_TASKS,
    MAX_TEMPLATE_KEY_CHARS,
    MAX_TEMPLATE_VARIABLES,
    DescriptionText,
    HeaderNameText,
    HeaderValueText,
    KeywordText,
    MessageText,
    NameText,
    PromptText,
    ShortText,
    TemplateValueText,
    UrlText,
    check_document_size,
)
from openline.domain.project import Ref
from openline.domain.validation import (
    check_e164,
    check_language,
    check_resource_name,
    check_timezone,
)

if TYPE_CHECKING:  # phone_number imports ConfigurationEndpoint from here
    from openline.domain.phone_number import PhoneNumber

AudioFormat = Literal["pcm_44100", "pcm_24000", "pcm_16000", "pcm_8000", "mulaw_8000"]
BackgroundNoise = Literal["office", "call-center", "coffee-shop"]
LanguageCode = Annotated[str, Field(min_length=2, max_length=3)]
BUILT_IN_TOOL_NAMES = (
    "keypad_input", "natural_conversation_ending", "choose_not_to_respond", "web_search",
)
DEFAULT_SYSTEM_PROMPT = "Respond in 1-2 sentences."
TEMPLATE_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


#: Timers longer than a day are refused (a call does not wait longer than that).
MAX_TIMER_SEC = 86_400
#: Retention windows up to ten years.
MAX_RETENTION_HOURS = 87_600
#: Why ``enable_watermarking: true`` is refused (README, "Data protection"): the one
#: maintained speech watermarker (AudioSeal) needs PyTorch and model weights downloaded at
#: run time, which Openline does not do; a hand-made mark would be no real protection.
WATERMARKING_REFUSAL = ("audio watermarking is not supported by this server (no CPU "
                        "watermarking model is installed); leave enable_watermarking false")


class _Lenient(BaseModel):
    """Unknown JSON keys are ignored, as the Phonic API does; NaN and infinity are refused
    (they cannot be written back as JSON)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class TemplateVariable(_Lenient):
    default_value: TemplateValueText | None = None
    is_boosted_keyword: bool = False


class Task(_Lenient):
    name: NameText = Field(min_length=1)
    description: DescriptionText = ""


class PronunciationEntry(_Lenient):
    word: ShortText = Field(min_length=1, max_length=30)
    pronunciation: ShortText = Field(min_length=1, max_length=50)


class ConfigurationEndpoint(_Lenient):
    """Where the agent fetches per-conversation overrides at conversation start."""

    url: UrlText
    headers: dict[HeaderNameText, HeaderValueText] = Field(default_factory=dict,
                                                           max_length=MAX_HEADERS)
    timeout_ms: int = Field(default=3000, ge=100, le=30000)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an absolute http(s) URL")
        if parts.username or parts.password:
            raise ValueError("url must not embed credentials")
        return value


class DataRetention(_Lenient):
    delete_after_hours: int | None = Field(default=None, ge=1, le=MAX_RETENTION_HOURS)


class DataRetentionPolicy(_Lenient):
    """How long transcripts and recordings are kept; a window without hours keeps them."""

    zero_data_retention: bool = False
    transcripts: DataRetention | None = None
    audio_recordings: DataRetention | None = None

    @field_validator("transcripts", "audio_recordings")
    @classmethod
    def _window(cls, value: DataRetention | None) -> DataRetention | None:
        # ``{"delete_after_hours": null}`` is how the standard policy is written back.
        return None if value is None or value.delete_after_hours is None else value

    def is_standard(self) -> bool:
        """Keeps everything indefinitely (the same as having no policy)."""
        return not (self.zero_data_retention or self.transcripts or self.audio_recordings)


class OutboundNumberPool(_Lenient):
    active: list[ShortText] = Field(default_factory=list, max_length=MAX_PHONE_NUMBERS)
    blocked: list[ShortText] = Field(default_factory=list, max_length=MAX_PHONE_NUMBERS)


class Integration(_Lenient):
    account_id: ShortText
    account_name: ShortText | None = None
    action_names: list[ShortText] = Field(default_factory=list, max_length=MAX_REFERENCES)
    app_slug: ShortText


class AgentSpec(_Lenient):
    """Validated, storable agent configuration (no identity, no phone numbers)."""

    name: NameText
    slug: NameText | None = None
    timezone: ShortText = "America/Los_Angeles"
    voice_id: ShortText = "grant"
    additional_voice_ids: list[ShortText] = Field(default_factory=list,
                                                  max_length=MAX_REFERENCES)
    audio_format: AudioFormat = "pcm_44100"
    audio_speed: float = Field(default=1.0, ge=0.5, le=1.5)
    background_noise_level: float = Field(default=0.0, ge=0.0, le=0.25)
    background_noise: BackgroundNoise | None = None
    generate_welcome_message: bool = False
    is_welcome_message_interruptible: bool = True
    welcome_message: MessageText | None = ""
    system_prompt: PromptText = DEFAULT_SYSTEM_PROMPT
    template_variables: dict[str, TemplateVariable] = Field(
        default_factory=dict, max_length=MAX_TEMPLATE_VARIABLES)
    websocket_timeout_sec: int = Field(default=60, ge=1, le=300)
    listen_only_inbound_enabled: bool = False
    listen_only_inbound_message: MessageText | None = None
    push_to_talk: bool = False
    min_words_to_interrupt: int = Field(default=1, ge=1, le=10)
    tools: list[ShortText] = Field(default_factory=list, max_length=MAX_AGENT_TOOLS)
    built_in_tool_configs: Annotated[dict[str, dict[str, Any]], JSON_CHECK] = Field(
        default_factory=dict)
    tasks: list[Task] = Field(default_factory=list, max_length=MAX_TASKS)
    integrations: list[Integration] = Field(default_factory=list, max_length=MAX_REFERENCES)
    generate_no_input_poke_text: bool = False
    no_input_poke_sec: int | None = Field(default=180, ge=1, le=MAX_TIMER_SEC)
    no_input_poke_text: MessageText = "Are you still there?"
    no_input_end_conversation_sec: int = Field(default=180, ge=1, le=MAX_TIMER_SEC)
    default_language: ShortText = "en"
    additional_languages: list[ShortText] = Field(default_factory=list,
                                                  max_length=MAX_REFERENCES)
    languages: list[ShortText] = Field(default_factory=lambda: ["en"],
                                       max_length=MAX_REFERENCES)
    multilingual_mode: Literal["auto", "request", "initial"] = "request"
    intelligence_level: Literal["standard", "high"] = "standard"
    phonic_model: Literal["phonic-0.5", "phonic-1", "phonic-1.1"] | None = None
    boosted_keywords: list[KeywordText] = Field(default_factory=list, max_length=MAX_KEYWORDS)
    pronunciation_dictionary: list[PronunciationEntry] = Field(
        default_factory=list, max_length=1000
    )
    vad_prebuffer_duration_ms: int = Field(default=500, ge=0, le=2000)
    vad_min_speech_duration_ms: int = Field(default=50, ge=0, le=1500)
    vad_min_silence_duration_ms: int = Field(default=800, ge=0, le=1500)
    vad_threshold: float = Field(default=0.38, ge=0.2, le=0.8)
    enable_assistant_backchannel: bool = False
    assistant_backchannel_aggressiveness: float = Field(default=0.1, ge=0.0, le=1.0)
    observability_integrations: list[Literal["braintrust"]] = Field(
        default_factory=list, max_length=MAX_REFERENCES)
    external_storage_policy: ShortText | None = None
    enable_redaction: bool = False
    enable_watermarking: bool = False
    data_retention_policy: DataRetentionPolicy | None = None
    mcp_server_ids: list[ShortText] = Field(default_factory=list, max_length=MAX_REFERENCES)
    configuration_endpoint: ConfigurationEndpoint | None = None
    inbound_rollout: float = Field(default=1.0, ge=0.0, le=1.0)
    inbound_rollout_forward_phone_number: ShortText | None = None
    outbound_number_pool: OutboundNumberPool | None = None
    procedure_ids: list[ShortText] = Field(default_factory=list, max_length=MAX_REFERENCES)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_resource_name(value)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        return None if value is None else check_resource_name(value, "slug")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("audio_speed")
    @classmethod
    def _speed_step(cls, value: float) -> float:
        # The spec says "multiples of 0.1"; compare with a tolerance for float input.
        if not math.isclose(value * 10, round(value * 10), abs_tol=1e-6):
            raise ValueError("audio_speed must be a multiple of 0.1")
        return round(value, 1)

    @field_validator("default_language")
    @classmethod
    def _lang(cls, value: str) -> str:
        return check_language(value)

    @field_validator("languages", "additional_languages")
    @classmethod
    def _langs(cls, value: list[str]) -> list[str]:
        return [check_language(v) for v in value]

    @field_validator("template_variables")
    @classmethod
    def _template_names(cls, value: dict[str, TemplateVariable]) -> dict[str, TemplateVariable]:
        for key in value:
            if len(key) > MAX_TEMPLATE_KEY_CHARS:
                raise ValueError(f"template variable names are at most "
                                 f"{MAX_TEMPLATE_KEY_CHARS} characters")
            if not TEMPLATE_VAR_NAME.fullmatch(key):
                raise ValueError(f"template variable name {key!r} must be an identifier")
        return value

    @field_validator("integrations", mode="before")
    @classmethod
    def _no_integrations(cls, value: Any) -> Any:
        return [] if value is None else value  # ``null`` clears them

    @field_validator("data_retention_policy")
    @classmethod
    def _policy(cls, value: DataRetentionPolicy | None) -> DataRetentionPolicy | None:
        # The standard policy is stored as "no policy", so that the policy an agent is
        # answered with (always written out) gives back the same configuration.
        return None if value is None or value.is_standard() else value

    @field_validator("inbound_rollout_forward_phone_number")
    @classmethod
    def _forward(cls, value: str | None) -> str | None:
        return None if value is None else check_e164(value)

    @model_validator(mode="after")
    def _size(self) -> AgentSpec:
        check_document_size(self)
        return self

    def rule_errors(self) -> dict[str, str]:
        """Cross-field rules, as ``{field: message}`` (empty when the spec is valid)."""
        errors: dict[str, str] = {}
        forward = "inbound_rollout_forward_phone_number"
        if self.inbound_rollout < 1.0 and not self.inbound_rollout_forward_phone_number:
            errors[forward] = "required when inbound_rollout is less than 1"
        if self.inbound_rollout >= 1.0 and self.inbound_rollout_forward_phone_number:
            errors[forward] = "must be null when inbound_rollout is 1"
        if self.multilingual_mode == "auto" and len(self.additional_languages) > 2:
            errors["additional_languages"] = "at most 2 with multilingual_mode 'auto'"
        if self.external_storage_policy is not None:
            policy = self.data_retention_policy
            if not (policy and policy.zero_data_retention):
                errors["external_storage_policy"] = "requires zero data retention"
            elif self.enable_redaction:
                errors["external_storage_policy"] = "cannot be combined with enable_redaction"
        if len(set(self.tools)) != len(self.tools):
            errors["tools"] = "tools must not repeat"
        if self.enable_watermarking:
            errors["enable_watermarking"] = WATERMARKING_REFUSAL
        return errors

    def template_defaults(self) -> dict[str, str]:
        """Template variable defaults as plain strings (``None`` becomes ``""``)."""
        return {k: (v.default_value or "") for k, v in self.template_variables.items()}


@dataclass(frozen=True)
class Agent:
    """A stored agent: its identity, its configuration and the numbers it answers."""

    id: str
    project: Ref
    spec: AgentSpec
    version_number: int
    is_disabled: bool
    phone_numbers: tuple[PhoneNumber, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ref(self) -> Ref:
        return Ref(self.id, self.spec.name)

    def custom_numbers(self) -> list[str]:
        """The numbers the customer brought (not drawn from the pool), oldest first."""
        return [n.number for n in self.phone_numbers if n.source == "custom"]
