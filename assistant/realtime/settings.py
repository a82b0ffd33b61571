"""Session settings: what ``session.update`` may set, how it is checked, and the session as sent.

Pure like `assistant.realtime.protocol`: a payload in either shape (GA nested
``audio`` or beta flat keys) becomes a new frozen `SessionSettings`, and every
field the server does not implement is refused with an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from assistant.realtime.protocol import (
    WIRE_RATE,
    Dialect,
    ProtocolError,
    check_format,
    check_known,
    check_voice,
    get_dict,
    get_number,
    get_str,
    max_tokens,
    parse_modalities,
    refuse_unless,
)
from assistant.realtime.tools import AUTO, FunctionTool, ToolChoice, check_choice, parse_tool_choice, parse_tools

EAGERNESS = ("low", "medium", "high", "auto")


@dataclass(frozen=True)
class TurnDetection:
    """Turn detection as OpenAI names it: ``server_vad`` (silence) or ``semantic_vad`` (an end-of-turn model)."""

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: str = "auto"
    create_response: bool = True
    interrupt_response: bool = True

    def wire(self) -> dict[str, Any]:
        """The settings as sent in ``session.created`` / ``session.updated``."""
        flags = {"create_response": self.create_response, "interrupt_response": self.interrupt_response}
        if self.type == "semantic_vad":
            return {"type": "semantic_vad", "eagerness": self.eagerness, **flags}
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            **flags,
        }


@dataclass(frozen=True)
class SessionSettings:
    """What ``session.update`` controls."""

    instructions: str
    voice: str = "default"
    turn_detection: TurnDetection | None = TurnDetection()
    transcription: bool = True
    temperature: float | None = None
    max_output_tokens: int | None = None
    modalities: tuple[str, ...] = ("audio",)
    tools: tuple[FunctionTool, ...] = ()
    """The client's own functions (the device's are offered beside them, not listed here)."""
    tool_choice: ToolChoice = AUTO


def parse_turn_detection(value: Any, current: TurnDetection | None, param: str) -> TurnDetection | None:
    """``turn_detection``: null (manual commits), a ``server_vad`` or a ``semantic_vad`` object."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError("invalid_type", f"'{param}' must be an object or null", param=param)
    kind = value.get("type", current.type if current else "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise ProtocolError(
            "unsupported_turn_detection",
            f"'{param}.type' {kind!r}: expected 'server_vad' or 'semantic_vad'",
            param=f"{param}.type",
        )
    base = current if current is not None and current.type == kind else TurnDetection(type=kind)
    where = f"{param}."
    check_known(value, _TURN_KEYS, where)
    refuse_unless(value, "idle_timeout_ms", (None,), "idle timeouts are not implemented", where)
    flags = {}
    for key in ("create_response", "interrupt_response"):
        if key in value:
            if not isinstance(value[key], bool):
                raise ProtocolError("invalid_type", f"'{where}{key}' must be a boolean", param=f"{where}{key}")
            flags[key] = value[key]
    if kind == "semantic_vad":
        for key in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
            if key in value:
                raise ProtocolError(
                    "unknown_parameter",
                    f"'{where}{key}' is a server_vad setting; semantic_vad takes 'eagerness' "
                    "(low, medium, high or auto)",
                    param=f"{where}{key}",
                )
        eagerness = value.get("eagerness", base.eagerness)
        if eagerness not in EAGERNESS:
            raise ProtocolError(
                "invalid_value",
                f"'{where}eagerness' {eagerness!r}: expected one of {', '.join(EAGERNESS)}",
                param=f"{where}eagerness",
            )
        return replace(base, eagerness=eagerness, **flags)
    if "eagerness" in value:
        raise ProtocolError(
            "unknown_parameter", f"'{where}eagerness' is a semantic_vad setting", param=f"{where}eagerness"
        )
    threshold = get_number(value, "threshold", 0.0, 1.0, where=where)
    padding = get_number(value, "prefix_padding_ms", 0, 5000, where=where)
    silence = get_number(value, "silence_duration_ms", 100, 10000, where=where)
    return replace(
        base,
        threshold=base.threshold if threshold is None else threshold,
        prefix_padding_ms=base.prefix_padding_ms if padding is None else int(padding),
        silence_duration_ms=base.silence_duration_ms if silence is None else int(silence),
        **flags,
    )


_SESSION_KEYS = (
    "type",
    "model",
    "instructions",
    "temperature",
    "max_output_tokens",
    "max_response_output_tokens",
    "output_modalities",
    "modalities",
    "voice",
    "turn_detection",
    "input_audio_transcription",
    "input_audio_format",
    "output_audio_format",
    "audio",
    "tools",
    "tool_choice",
    "tracing",
    "truncation",
    "prompt",
    "include",
    "speed",
    "input_audio_noise_reduction",
)
_TURN_KEYS = (
    "type",
    "eagerness",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "create_response",
    "interrupt_response",
    "idle_timeout_ms",
)
_TRANSCRIPTION_KEYS = ("model", "language", "prompt")


@dataclass(frozen=True)
class Capabilities:
    """What this server can do for a session: its voices, the transcription language, the model names."""

    voices: tuple[str, ...]
    language: str
    models: frozenset[str]
    """Names a ``session.update`` may give as ``model`` (those meaning the connection's own model)."""
    device_tools: frozenset[str] = frozenset()
    """The names of the device's functions, offered to the LLM beside a client's."""


def _refuse_unimplemented(session: dict[str, Any]) -> None:
    where = "session."
    refuse_unless(session, "type", ("realtime",), "this server runs realtime sessions only", where)
    refuse_unless(session, "tracing", (None,), "traces are not recorded", where)
    refuse_unless(session, "truncation", ("auto", None), "only 'auto' truncation is implemented", where)
    refuse_unless(session, "prompt", (None,), "stored prompts are an OpenAI platform feature", where)
    refuse_unless(session, "include", (None, []), "no extra output fields are available", where)
    refuse_unless(session, "speed", (1.0, None), "the voice speaks at its own rate (1.0)", where)
    refuse_unless(session, "input_audio_noise_reduction", (None,), "there is no noise reduction", where)


def _transcription(value: Any, language: str, param: str) -> bool:
    """``input_audio_transcription`` / ``audio.input.transcription``: on (an object) or off (null)."""
    if value is None:
        return False
    if not isinstance(value, dict):
        raise ProtocolError("invalid_type", f"'{param}' must be an object or null", param=param)
    check_known(value, _TRANSCRIPTION_KEYS, f"{param}.")
    refuse_unless(value, "language", (language, None, ""), f"whisper.cpp transcribes {language!r}", f"{param}.")
    refuse_unless(value, "prompt", (None, ""), "transcription prompts are not implemented", f"{param}.")
    return True


def apply_session_update(settings: SessionSettings, session: dict[str, Any], caps: Capabilities) -> SessionSettings:
    """Apply a ``session.update`` payload in either shape (GA nested ``audio`` or beta flat)."""
    check_known(session, _SESSION_KEYS, "session.")
    _refuse_unimplemented(session)
    if "model" in session and session["model"] not in caps.models:
        raise ProtocolError(
            "unsupported_parameter",
            f"'session.model' {session['model']!r}: a session keeps the "
            "model it connected with (choose it with ?model= when connecting)",
            param="session.model",
        )
    changes: dict[str, Any] = {}
    if "instructions" in session:
        changes["instructions"] = get_str(session, "instructions", where="session.") or ""
    if "temperature" in session:
        changes["temperature"] = get_number(session, "temperature", 0.0, 2.0, where="session.")
    for key in ("max_output_tokens", "max_response_output_tokens"):
        if key in session:
            changes["max_output_tokens"] = max_tokens(session[key], f"session.{key}")
    for key in ("output_modalities", "modalities"):
        if key in session:
            changes["modalities"] = parse_modalities(session[key], f"session.{key}")
    if session.get("tools") is not None:
        changes["tools"] = parse_tools(session["tools"], "session.tools")
    if session.get("tool_choice") is not None:
        changes["tool_choice"] = parse_tool_choice(session["tool_choice"], "session.tool_choice")
    tools, choice = changes.get("tools", settings.tools), changes.get("tool_choice", settings.tool_choice)
    check_choice(choice, tools, caps.device_tools, "session.tool_choice")
    # Beta: flat keys.
    if "voice" in session:
        changes["voice"] = check_voice(session["voice"], caps.voices, "session.voice")
    if "turn_detection" in session:
        changes["turn_detection"] = parse_turn_detection(
            session["turn_detection"], settings.turn_detection, "session.turn_detection"
        )
    if "input_audio_transcription" in session:
        changes["transcription"] = _transcription(
            session["input_audio_transcription"], caps.language, "session.input_audio_transcription"
        )
    for key in ("input_audio_format", "output_audio_format"):
        if key in session and session[key] != "pcm16":
            raise ProtocolError("unsupported_audio_format", f"'session.{key}' must be 'pcm16'", param=f"session.{key}")
    # GA: nested under audio.input / audio.output.
    audio = get_dict(session, "audio", where="session.") or {}
    audio_in = get_dict(audio, "input", where="session.audio.") or {}
    audio_out = get_dict(audio, "output", where="session.audio.") or {}
    check_known(audio, ("input", "output"), "session.audio.")
    check_known(audio_in, ("format", "transcription", "turn_detection", "noise_reduction"), "session.audio.input.")
    check_known(audio_out, ("format", "voice", "speed"), "session.audio.output.")
    refuse_unless(audio_in, "noise_reduction", (None,), "there is no noise reduction", "session.audio.input.")
    refuse_unless(audio_out, "speed", (1.0, None), "the voice speaks at its own rate (1.0)", "session.audio.output.")
    if "turn_detection" in audio_in:
        changes["turn_detection"] = parse_turn_detection(
            audio_in["turn_detection"], settings.turn_detection, "session.audio.input.turn_detection"
        )
    if "transcription" in audio_in:
        changes["transcription"] = _transcription(
            audio_in["transcription"], caps.language, "session.audio.input.transcription"
        )
    if "voice" in audio_out:
        changes["voice"] = check_voice(audio_out["voice"], caps.voices, "session.audio.output.voice")
    for where, part in (("session.audio.input.", audio_in), ("session.audio.output.", audio_out)):
        check_format(part.get("format"), f"{where}format")
    return replace(settings, **changes)


def session_object(settings: SessionSettings, dialect: Dialect, session_id: str, model: str) -> dict[str, Any]:
    """The session as ``session.created`` / ``session.updated`` carry it."""
    turn = settings.turn_detection.wire() if settings.turn_detection else None
    transcription = {"model": "whisper.cpp"} if settings.transcription else None
    limit: int | str = "inf" if settings.max_output_tokens is None else settings.max_output_tokens
    if dialect is Dialect.BETA:
        return {
            "id": session_id,
            "model": model,
            "modalities": ["text", "audio"] if "audio" in settings.modalities else ["text"],
            "instructions": settings.instructions,
            "voice": settings.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": transcription,
            "turn_detection": turn,
            "tools": [tool.wire() for tool in settings.tools],
            "tool_choice": settings.tool_choice.wire(dialect),
            "temperature": settings.temperature if settings.temperature is not None else 0.8,
            "max_response_output_tokens": limit,
        }
    pcm = {"type": "audio/pcm", "rate": WIRE_RATE}
    # GA's session object has no id or object field (the SDK's RealtimeSessionCreateRequest).
    return {
        "type": "realtime",
        "model": model,
        "output_modalities": list(settings.modalities),
        "instructions": settings.instructions,
        "audio": {
            "input": {"format": pcm, "transcription": transcription, "turn_detection": turn, "noise_reduction": None},
            "output": {"format": pcm, "voice": settings.voice, "speed": 1.0},
        },
        "tools": [tool.wire() for tool in settings.tools],
        "tool_choice": settings.tool_choice.wire(dialect),
        "max_output_tokens": limit,
    }
