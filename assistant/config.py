"""Configuration: YAML files and `--set` overrides, validated once into frozen objects.

Every error names the key path, the bad value and what is allowed.  The
documented defaults live in `config/default.yaml`; the models here carry the
same defaults so that a partial file is enough.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from assistant.core.errors import ConfigError

Accelerator = Literal["auto", "cpu", "cuda"]


class Section(BaseModel):
    """Base of every config section: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class AudioConfig(Section):
    input_device: str | None = None
    output_device: str | None = None
    input_rate: int | None = Field(default=None, ge=8000, le=192000)
    output_rate: int | None = Field(default=None, ge=8000, le=192000)
    output_block_ms: int = Field(default=40, ge=10, le=50)
    queue_blocks: int = Field(default=25, ge=2, le=1000)
    reconnect_initial_s: float = Field(default=1.0, gt=0.0, le=60.0)
    reconnect_max_s: float = Field(default=8.0, gt=0.0, le=600.0)


class WakeConfig(Section):
    models: tuple[str, ...] = ("hey_jarvis",)
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    refractory_s: float = Field(default=2.0, ge=0.0, le=60.0)
    preroll_ms: int = Field(default=1500, ge=0, le=3000)
    melspectrogram_model: str | None = None
    embedding_model: str | None = None
    threads: int = Field(default=1, ge=1, le=64)
    accelerator: Accelerator = "cpu"

    @field_validator("models")
    @classmethod
    def _at_least_one(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one wake-word model is required")
        return value


class VadConfig(Section):
    model: str = "silero_vad"
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    silence_ms: int = Field(default=700, ge=100, le=10000)
    complete_silence_ms: int | None = Field(default=None, ge=100, le=10000)
    trailing_silence_ms: int | None = Field(default=None, ge=100, le=10000)
    min_speech_ms: int = Field(default=150, ge=0, le=5000)
    no_speech_timeout_s: float = Field(default=5.0, gt=0.0, le=120.0)
    max_utterance_s: float = Field(default=15.0, gt=0.5, le=120.0)
    threads: int = Field(default=1, ge=1, le=64)


class TurnConfig(Section):
    mode: Literal["smart_turn", "silence"] = "smart_turn"
    model: str = "smart-turn-v3.2"
    check_silence_ms: int = Field(default=200, ge=32, le=2000)
    recheck_ms: int = Field(default=100, ge=100, le=2000)
    max_silence_ms: int = Field(default=1600, ge=200, le=10000)
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    transcript_check: bool = True
    threads: int = Field(default=1, ge=1, le=64)
    accelerator: Accelerator = "auto"

    @model_validator(mode="after")
    def _max_after_check(self) -> TurnConfig:
        if self.max_silence_ms <= self.check_silence_ms:
            raise ValueError(
                f"turn.max_silence_ms ({self.max_silence_ms}) must be longer than "
                f"turn.check_silence_ms ({self.check_silence_ms})"
            )
        return self


# Whisper's initial prompt: the device's own requests, without numbers or names (a prompt's
# values get copied into transcripts). Measured: README, "How well it hears these requests".
STT_PROMPT = (
    "Set a timer. Cancel the timer. Pause the timer. Resume the timer. Add minutes to the timer. "
    "Set an alarm. Wake me up. Turn the volume up. Mute. Unmute. Stop. Repeat that. What time is it?"
)


class SttConfig(Section):
    model: str = "tiny.en"
    language: str = "en"
    threads: int = Field(default=2, ge=1, le=64)
    window: Literal["full", "fitted"] = "full"
    min_audio_ctx: int = Field(default=128, ge=32, le=1500)
    context_margin_ms: int = Field(default=320, ge=0, le=30000)
    max_tokens_per_s: float = Field(default=8.0, ge=1.0, le=50.0)
    timeout_s: float = Field(default=20.0, gt=0.0, le=300.0)
    accelerator: Accelerator = "auto"
    prompt: str = Field(default=STT_PROMPT, max_length=800)


class LlmFallbackConfig(Section):
    """One entry of `llm.fallbacks`: another host and/or model (unset keys take llm's own)."""

    host: str | None = None
    model: str | None = None
    connect_timeout_s: float | None = Field(default=None, gt=0.0, le=60.0)

    @model_validator(mode="after")
    def _names_something(self) -> LlmFallbackConfig:
        if self.host is None and self.model is None:
            raise ValueError("a fallback needs a host, a model or both")
        return self


class LlmConfig(Section):
    host: str = "http://127.0.0.1:11434"
    model: str = "llama3.2:1b"
    system_prompt: str = (
        "You are a helpful voice assistant on a small speaker. Answer in one to "
        "three short spoken sentences. No lists, no markdown, no emoji."
    )
    options: dict[str, Any] = Field(default_factory=dict)
    keep_alive: str | int = "30m"
    timeout_s: float = Field(default=30.0, gt=0.0, le=600.0)
    connect_timeout_s: float = Field(default=2.0, gt=0.0, le=60.0)
    fallbacks: tuple[LlmFallbackConfig, ...] = ()
    recheck_s: float = Field(default=10.0, gt=0.0, le=3600.0)
    warm_on_wake: bool = True
    tools: bool = True


class TtsConfig(Section):
    voice: str = "en_US-lessac-medium"
    voices: dict[str, str] = Field(default_factory=dict)
    speaker_id: int | None = Field(default=None, ge=0)
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    first_chunk_min_chars: int = Field(default=24, ge=0, le=400)
    threads: int = Field(default=1, ge=1, le=64)
    accelerator: Accelerator = "auto"

    @field_validator("voices")
    @classmethod
    def _voice_names(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        own = Path(str(info.data.get("voice", ""))).name.removesuffix(".onnx")
        for name, voice in value.items():
            if not name.strip() or name != name.strip() or name in ("default", own):
                raise ValueError(
                    f"key {name!r}: a voice needs a name of its own (not empty, not 'default', "
                    f"not {own!r}, the name of tts.voice)"
                )
            if not voice.strip():
                raise ValueError(f"{name!r} is empty: give a bundled Piper voice name or a path to a .onnx")
        return value


class ConversationConfig(Section):
    follow_up_s: float = Field(default=0.0, ge=0.0, le=60.0)
    max_turns: int = Field(default=6, ge=0, le=100)
    forget_after_s: float = Field(default=300.0, ge=0.0)
    apology: str = "Sorry, I couldn't get an answer just now."
    not_heard: str = "Sorry, I didn't catch that."
    llm_unavailable: str = (
        "General questions need the LLM server, and it isn't available right now. "
        "I can still do the time, timers, alarms and volume."
    )
    wake_chime: bool = False


class LedsConfig(Section):
    kind: Literal["none", "per_state", "pwm", "rgb", "apa102"] = "none"
    pins: dict[str, int] = Field(default_factory=dict)
    colors: dict[str, tuple[float, float, float]] = Field(default_factory=dict)
    brightness: float = Field(default=0.5, ge=0.0, le=1.0)
    pixels: int = Field(default=3, ge=1, le=64)


class ButtonConfig(Section):
    pin: int | None = Field(default=None, ge=0, le=64)
    pull_up: bool = True
    bounce_ms: int = Field(default=50, ge=0, le=1000)


class SoundsConfig(Section):
    wake: bool = False
    end_of_listening: bool = False
    error: bool = True
    mute_on: bool = True
    mute_off: bool = True
    ring: bool = True
    volume: float = Field(default=0.5, ge=0.0, le=1.0)


class ServerConfig(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    token: str | None = None
    max_sessions: int = Field(default=4, ge=1, le=1000)
    max_message_bytes: int = Field(default=1_048_576, ge=1024)
    max_buffer_s: float = Field(default=60.0, gt=0.0, le=3600.0)
    max_pending_per_session: int = Field(default=3, ge=1, le=100)
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    allowed_models: tuple[str, ...] = ()

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        origins = []
        for origin in value:
            scheme, sep, rest = origin.strip().lower().rstrip("/").partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest or "@" in rest:
                raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port], e.g. https://app.example")
            origins.append(f"{scheme}://{rest}")
        return tuple(origins)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        hosts = []
        for host in value:
            name = host.strip().lower().rstrip(".")
            if not name or any(c in name for c in "/:@ "):
                raise ValueError(f"{host!r} is not a host name: write a bare name such as assistant.local")
            hosts.append(name)
        return tuple(hosts)


class MetricsConfig(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    token: str | None = None

    @model_validator(mode="after")
    def _token_off_loopback(self) -> MetricsConfig:
        if self.port is not None and not is_loopback(self.host) and not self.token:
            raise ValueError(
                f"metrics.host = {self.host!r} is not a loopback address: set metrics.token (scrapers send it "
                "as 'Authorization: Bearer TOKEN') or bind to 127.0.0.1"
            )
        return self


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback name or address."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, *, key: str = "server") -> None:
    """Refuse (ConfigError) to listen off loopback without a token (`key` names the config section)."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"{key}.host = {host!r} is not a loopback address: set {key}.token (clients send it as "
            "'Authorization: Bearer TOKEN') or bind to 127.0.0.1"
        )


class SkillsConfig(Section):
    enabled: bool = True
    timezone: str | None = None
    clock: Literal["12h", "24h"] = "12h"
    ring_s: float = Field(default=6.0, ge=1.0, le=600.0)
    ring_timeout_s: float = Field(default=300.0, ge=0.0, le=3600.0)
    max_timers: int = Field(default=10, ge=1, le=100)
    max_timer_s: float = Field(default=86400.0, gt=0.0, le=7 * 86400.0)
    volume_step_pct: int = Field(default=10, ge=1, le=50)
    strip_words: tuple[str, ...] = ("hey jarvis", "jarvis")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "unknown time zone: use an IANA name such as Europe/Berlin, or null for the system's"
            ) from None
        return value


class Config(Section):
    models_dir: str = Field(
        default_factory=lambda: os.environ.get("ASSISTANT_MODELS_DIR", "~/.local/share/assistant/models")
    )
    state_dir: str = Field(default_factory=lambda: os.environ.get("STATE_DIRECTORY", "~/.local/state/assistant"))
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    audio: AudioConfig = AudioConfig()
    wake: WakeConfig = WakeConfig()
    vad: VadConfig = VadConfig()
    turn: TurnConfig = TurnConfig()
    stt: SttConfig = SttConfig()
    llm: LlmConfig = LlmConfig()
    tts: TtsConfig = TtsConfig()
    conversation: ConversationConfig = ConversationConfig()
    leds: LedsConfig = LedsConfig()
    button: ButtonConfig = ButtonConfig()
    sounds: SoundsConfig = SoundsConfig()
    server: ServerConfig = ServerConfig()
    metrics: MetricsConfig = MetricsConfig()
    skills: SkillsConfig = SkillsConfig()

    @model_validator(mode="after")
    def _metrics_served(self) -> Config:
        if self.metrics.enabled and self.metrics.port is None and not self.server.enabled:
            raise ValueError(
                "metrics.enabled needs somewhere to serve /metrics: set metrics.port (its own listener) "
                "or server.enabled (the realtime server's /metrics)"
            )
        return self

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir).expanduser()

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser()


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (mappings merge, the rest replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_file(path: Path) -> dict[str, Any]:
    """Read one YAML config file into a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config file {path}{where} is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def parse_override(item: str) -> dict[str, Any]:
    """Turn `a.b.c=VALUE` into `{"a": {"b": {"c": VALUE}}}`, VALUE read as YAML."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. llm.model=qwen2.5:1.5b")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def _allowed_keys(loc: Sequence[int | str]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def describe(error: ValidationError, source: str) -> str:
    """One readable message per problem: key path, bad value, what is allowed."""
    lines = []
    for problem in error.errors():
        loc = list(problem["loc"])
        path = ".".join(str(part) for part in loc)
        if problem["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc))
            lines.append(f"{path}: unknown key (allowed here: {allowed})")
            continue
        value = problem.get("input")
        message = problem["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if not loc:  # a rule across sections: its message names the keys
            lines.append(message)
            continue
        lines.append(f"{path} = {value!r}: {message}")
    head = f"invalid configuration ({source}):"
    return "\n".join([head, *("  " + line for line in lines)])


def load(
    files: Iterable[Path | str] = (),
    overrides: Iterable[str] = (),
    *,
    base: Mapping[str, Any] | None = None,
) -> Config:
    """Merge files in order, then `--set` overrides, and validate once."""
    data: dict[str, Any] = dict(base or {})
    sources = []
    for file in files:
        path = Path(file)
        data = merge(data, read_file(path))
        sources.append(str(path))
    for item in overrides:
        data = merge(data, parse_override(item))
        sources.append(f"--set {item}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, ", ".join(sources) or "defaults")) from None
