"""The OpenAI Realtime wire format: event names (GA and beta), client fields, audio.

Everything here is pure: it names the client events and their fields, checks
field values (refusing, by name, what the server does not implement), and
converts PCM16 24 kHz base64 audio.  Session settings are in
`assistant.realtime.settings`.  Errors in client input raise `ProtocolError`,
which the session turns into an ``error`` event naming the offending client
event.
"""

from __future__ import annotations

import base64
import binascii
import secrets
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

_BASE = ("type", "event_id")
CLIENT_EVENTS: dict[str, tuple[str, ...]] = {
    "session.update": (*_BASE, "session"),
    "input_audio_buffer.append": (*_BASE, "audio"),
    "input_audio_buffer.commit": _BASE,
    "input_audio_buffer.clear": _BASE,
    "conversation.item.create": (*_BASE, "previous_item_id", "item"),
    "conversation.item.truncate": (*_BASE, "item_id", "content_index", "audio_end_ms"),
    "conversation.item.delete": (*_BASE, "item_id"),
    "conversation.item.retrieve": (*_BASE, "item_id"),
    "response.create": (*_BASE, "response"),
    "response.cancel": (*_BASE, "response_id"),
}
"""Every client event the server understands (the same names in both dialects) and its fields."""


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


# --- fields the server knows, and those it refuses ---------------------------------


def check_known(data: dict[str, Any], known: tuple[str, ...] | frozenset[str], where: str = "") -> None:
    """ProtocolError ``unknown_parameter`` for a key of `data` the protocol does not have."""
    for key in data:
        if key not in known:
            raise ProtocolError("unknown_parameter", f"unknown parameter '{where}{key}'", param=f"{where}{key}")


def refuse_unless(data: dict[str, Any], key: str, accepted: tuple[Any, ...], why: str, where: str = "") -> None:
    """ProtocolError ``unsupported_parameter`` when `key` is set to anything but one of `accepted`."""
    if key in data and data[key] not in accepted:
        param = f"{where}{key}"
        raise ProtocolError("unsupported_parameter", f"'{param}' = {data[key]!r} is not supported: {why}", param=param)


def check_voice(value: Any, voices: tuple[str, ...], param: str) -> str:
    """A voice name the server has (``default`` means the first); ProtocolError listing them otherwise."""
    if not isinstance(value, str):
        raise ProtocolError("invalid_type", f"'{param}' must be a string", param=param)
    if value == "default":
        return voices[0]
    if value not in voices:
        listed = ", ".join(voices)
        raise ProtocolError(
            "unsupported_voice", f"'{param}' {value!r} is not available; voices: {listed} (or 'default')", param=param
        )
    return value


def parse_metadata(value: Any, param: str) -> dict[str, str] | None:
    """OpenAI's ``metadata``: up to 16 string pairs, keys up to 64 characters, values up to 512."""
    if value is None:
        return None
    ok = (
        isinstance(value, dict)
        and len(value) <= 16
        and all(isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in value.items())
    )
    if not ok:
        message = f"'{param}' must be an object of at most 16 string values (keys <= 64, values <= 512 characters)"
        raise ProtocolError("invalid_value", message, param=param)
    return dict(value)


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


# --- shared field parsers ---------------------------------------------------------


def parse_modalities(value: Any, param: str) -> tuple[str, ...]:
    """``["audio"]`` or ``["text"]`` (beta's ``["text", "audio"]`` means audio)."""
    if not isinstance(value, list) or not value or not all(m in ("text", "audio") for m in value):
        raise ProtocolError("invalid_value", f"'{param}' must be ['audio'] or ['text']", param=param)
    return ("audio",) if "audio" in value else ("text",)


def check_format(value: Any, param: str) -> None:
    """Accept only PCM16 at 24 kHz (GA ``{"type": "audio/pcm", "rate": 24000}`` or ``"pcm16"``)."""
    if value is None or value == "pcm16":
        return
    if isinstance(value, dict) and value.get("type") == "audio/pcm" and value.get("rate", WIRE_RATE) == WIRE_RATE:
        check_known(value, ("type", "rate"), f"{param}.")
        return
    raise ProtocolError("unsupported_audio_format", f"'{param}': only PCM16 mono at 24000 Hz is supported", param=param)


def content_type(kind: str, dialect: Dialect) -> str:
    """Assistant item content type: ``output_audio``/``output_text`` (GA) or ``audio``/``text`` (beta).

    The parts of ``response.content_part.added``/``.done`` are ``audio``/``text`` in both dialects.
    """
    return kind if dialect is Dialect.BETA else f"output_{kind}"
