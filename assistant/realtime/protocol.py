"""The OpenAI Realtime wire format: event names (GA and beta), session settings, audio.

Everything here is pure: it parses client payloads into typed settings, renders
the session and items in either dialect, and converts PCM16 24 kHz base64 audio.
Errors in client input raise `ProtocolError`, which the session turns into an
``error`` event naming the offending client event.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

from assistant.core.ports import Audio

WIRE_RATE = 24_000
"""The sample rate of every audio payload on the wire (PCM16 mono)."""

MAX_OUTPUT_TOKENS = 4096


class Dialect(StrEnum):
    """Which event names a client speaks: GA by default, beta with ``OpenAI-Beta: realtime=v1``."""

    GA = "ga"
    BETA = "beta"


# GA name -> beta name, for the server events whose names differ.  None: beta has no such event.
_BETA_NAMES: dict[str, str | None] = {
    "conversation.item.added": "conversation.item.created",
    "conversation.item.done": None,
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
}

CLIENT_EVENTS = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.truncate",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "response.create",
        "response.cancel",
    }
)
"""Every client event the server understands (the same names in both dialects)."""


def event_name(ga_name: str, dialect: Dialect) -> str | None:
    """The wire name of a server event in `dialect` (None: not sent in that dialect)."""
    if dialect is Dialect.BETA and ga_name in _BETA_NAMES:
        return _BETA_NAMES[ga_name]
    return ga_name


def new_id(prefix: str) -> str:
    """An id in OpenAI's style, such as ``item_3f9a...``."""
    return f"{prefix}_{secrets.token_hex(10)}"


class ProtocolError(Exception):
    """A client event the server cannot accept; becomes an ``error`` event."""

    def __init__(self, code: str, message: str, *, param: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.code = code
        self.param = param
        self.kind = kind


# --- field access ------------------------------------------------------------------


def get_str(data: dict[str, Any], key: str, *, where: str = "", required: bool = True) -> str | None:
    """`data[key]` as a string; ProtocolError when missing (if required) or not a string."""
    value = data.get(key)
    param = f"{where}{key}"
    if value is None:
        if required:
            raise ProtocolError("missing_required_parameter", f"missing required parameter '{param}'", param=param)
        return None
    if not isinstance(value, str):
        raise ProtocolError("invalid_type", f"'{param}' must be a string, not {type(value).__name__}", param=param)
    return value


def get_dict(data: dict[str, Any], key: str, *, where: str = "") -> dict[str, Any] | None:
    """`data[key]` as an object, None when absent; ProtocolError for another type."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError("invalid_type", f"'{where}{key}' must be an object", param=f"{where}{key}")
    return value


def get_number(data: dict[str, Any], key: str, low: float, high: float, *, where: str = "") -> float | None:
    """`data[key]` as a number within [low, high], None when absent."""
    value = data.get(key)
    param = f"{where}{key}"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError("invalid_type", f"'{param}' must be a number", param=param)
    if not low <= value <= high:
        raise ProtocolError("invalid_value", f"'{param}' must be between {low:g} and {high:g}", param=param)
    return float(value)


def max_tokens(value: Any, param: str) -> int | None:
    """An output token limit: an integer 1..4096, or ``"inf"`` (None: no limit)."""
    if value == "inf":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_TOKENS:
        message = f"'{param}' must be an integer 1..{MAX_OUTPUT_TOKENS} or 'inf'"
        raise ProtocolError("invalid_value", message, param=param)
    return value


# --- audio ---------------------------------------------------------------------------


def decode_audio(data: Any, param: str = "audio") -> Audio:
    """Base64 PCM16 little-endian mono -> float32; ProtocolError for bad input."""
    if not isinstance(data, str):
        raise ProtocolError("invalid_type", f"'{param}' must be a base64 string", param=param)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("invalid_audio", f"'{param}' is not valid base64", param=param) from None
    if len(raw) % 2:
        message = f"'{param}' has an odd byte count: PCM16 needs 2 bytes a sample"
        raise ProtocolError("invalid_audio", message, param=param)
    return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0


def pcm16(audio: Audio) -> bytes:
    """float32 [-1, 1] -> PCM16 little-endian bytes."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def encode_audio(audio: Audio) -> str:
    """float32 [-1, 1] -> base64 PCM16 little-endian."""
    return base64.b64encode(pcm16(audio)).decode("ascii")


# --- session settings ------------------------------------------------------------------


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


def parse_turn_detection(value: Any, current: TurnDetection | None, param: str) -> TurnDetection | None:
    """``turn_detection``: null (manual commits), a ``server_vad`` or a ``semantic_vad`` object."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError("invalid_type", f"'{param}' must be an object or null", param=param)
    kind = value.get("type", current.type if current else "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise ProtocolError("unsupported_turn_detection",
                            f"'{param}.type' {kind!r}: expected 'server_vad' or 'semantic_vad'", param=f"{param}.type")
    base = current if current is not None and current.type == kind else TurnDetection(type=kind)
    where = f"{param}."
    flags = {}
    for key in ("create_response", "interrupt_response"):
        if key in value:
            if not isinstance(value[key], bool):
                raise ProtocolError("invalid_type", f"'{where}{key}' must be a boolean", param=f"{where}{key}")
            flags[key] = value[key]
    if kind == "semantic_vad":
        for key in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
            if key in value:
                raise ProtocolError("unknown_parameter", f"'{where}{key}' is a server_vad setting; semantic_vad "
                                    "takes 'eagerness' (low, medium, high or auto)", param=f"{where}{key}")
        eagerness = value.get("eagerness", base.eagerness)
        if eagerness not in EAGERNESS:
            raise ProtocolError("invalid_value", f"'{where}eagerness' {eagerness!r}: expected one of "
                                f"{', '.join(EAGERNESS)}", param=f"{where}eagerness")
        return replace(base, eagerness=eagerness, **flags)
    if "eagerness" in value:
        raise ProtocolError("unknown_parameter", f"'{where}eagerness' is a semantic_vad setting",
                            param=f"{where}eagerness")
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


def parse_modalities(value: Any, param: str) -> tuple[str, ...]:
    """``["audio"]`` or ``["text"]`` (beta's ``["text", "audio"]`` means audio)."""
    if not isinstance(value, list) or not value or not all(m in ("text", "audio") for m in value):
        raise ProtocolError("invalid_value", f"'{param}' must be ['audio'] or ['text']", param=param)
    return ("audio",) if "audio" in value else ("text",)


def apply_session_update(settings: SessionSettings, session: dict[str, Any]) -> SessionSettings:
    """Apply a ``session.update`` payload in either shape (GA nested ``audio`` or beta flat)."""
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
    # Beta: flat keys.
    if "voice" in session:
        changes["voice"] = get_str(session, "voice", where="session.")
    if "turn_detection" in session:
        changes["turn_detection"] = parse_turn_detection(
            session["turn_detection"], settings.turn_detection, "session.turn_detection")
    if "input_audio_transcription" in session:
        changes["transcription"] = session["input_audio_transcription"] is not None
    for key in ("input_audio_format", "output_audio_format"):
        if key in session and session[key] != "pcm16":
            raise ProtocolError("unsupported_audio_format", f"'session.{key}' must be 'pcm16'", param=f"session.{key}")
    # GA: nested under audio.input / audio.output.
    audio = get_dict(session, "audio", where="session.") or {}
    audio_in = get_dict(audio, "input", where="session.audio.") or {}
    audio_out = get_dict(audio, "output", where="session.audio.") or {}
    if "turn_detection" in audio_in:
        changes["turn_detection"] = parse_turn_detection(
            audio_in["turn_detection"], settings.turn_detection, "session.audio.input.turn_detection")
    if "transcription" in audio_in:
        changes["transcription"] = audio_in["transcription"] is not None
    if "voice" in audio_out:
        changes["voice"] = get_str(audio_out, "voice", where="session.audio.output.")
    for where, part in (("session.audio.input.", audio_in), ("session.audio.output.", audio_out)):
        check_format(part.get("format"), f"{where}format")
    return replace(settings, **changes)


def check_format(value: Any, param: str) -> None:
    """Accept only PCM16 at 24 kHz (GA ``{"type": "audio/pcm", "rate": 24000}`` or ``"pcm16"``)."""
    if value is None or value == "pcm16":
        return
    if isinstance(value, dict) and value.get("type") == "audio/pcm" and value.get("rate", WIRE_RATE) == WIRE_RATE:
        return
    raise ProtocolError("unsupported_audio_format", f"'{param}': only PCM16 mono at 24000 Hz is supported", param=param)


def session_object(settings: SessionSettings, dialect: Dialect, session_id: str, model: str) -> dict[str, Any]:
    """The session as ``session.created`` / ``session.updated`` carry it."""
    turn = settings.turn_detection.wire() if settings.turn_detection else None
    transcription = {"model": "whisper.cpp"} if settings.transcription else None
    limit: int | str = "inf" if settings.max_output_tokens is None else settings.max_output_tokens
    if dialect is Dialect.BETA:
        return {
            "id": session_id,
            "object": "realtime.session",
            "model": model,
            "modalities": ["text", "audio"] if "audio" in settings.modalities else ["text"],
            "instructions": settings.instructions,
            "voice": settings.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": transcription,
            "turn_detection": turn,
            "tools": [],
            "tool_choice": "auto",
            "temperature": settings.temperature if settings.temperature is not None else 0.8,
            "max_response_output_tokens": limit,
        }
    pcm = {"type": "audio/pcm", "rate": WIRE_RATE}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": list(settings.modalities),
        "instructions": settings.instructions,
        "audio": {
            "input": {"format": pcm, "transcription": transcription, "turn_detection": turn, "noise_reduction": None},
            "output": {"format": pcm, "voice": settings.voice, "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": limit,
    }


def content_type(kind: str, dialect: Dialect) -> str:
    """Assistant content part type: ``output_audio``/``output_text`` (GA) or ``audio``/``text`` (beta)."""
    return kind if dialect is Dialect.BETA else f"output_{kind}"
