"""The typed events and the bus every observer subscribes to.

Event `type` strings are a public contract (the `--events` JSON lines, the
LEDs, systemd STATUS and the realtime server all read them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any, ClassVar

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base event; `t` is seconds of microphone audio when it happened."""

    type: ClassVar[str] = "event"
    t: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["t"] = round(self.t, 3)
        return {"type": self.type, **data}


@dataclass(frozen=True)
class StateChanged(Event):
    type: ClassVar[str] = "state"
    state: str
    previous: str


@dataclass(frozen=True)
class Wake(Event):
    type: ClassVar[str] = "wake"
    model: str
    score: float


@dataclass(frozen=True)
class SpeechStarted(Event):
    type: ClassVar[str] = "speech_started"


@dataclass(frozen=True)
class SpeechStopped(Event):
    type: ClassVar[str] = "speech_stopped"
    duration_s: float


@dataclass(frozen=True)
class NoSpeech(Event):
    type: ClassVar[str] = "no_speech"


@dataclass(frozen=True)
class Transcript(Event):
    type: ClassVar[str] = "transcript"
    text: str


@dataclass(frozen=True)
class LlmRequest(Event):
    type: ClassVar[str] = "llm_request"
    model: str
    messages: int


@dataclass(frozen=True)
class LlmFirstToken(Event):
    type: ClassVar[str] = "llm_first_token"


@dataclass(frozen=True)
class LlmDone(Event):
    type: ClassVar[str] = "llm_done"
    text: str


@dataclass(frozen=True)
class ToolCalled(Event):
    """The LLM called one of the device's functions; `result` is what went back to it."""

    type: ClassVar[str] = "tool_call"
    name: str
    arguments: dict[str, Any]
    result: str


@dataclass(frozen=True)
class LlmHostDown(Event):
    """An LLM host failed and is skipped until a background check finds it back."""

    type: ClassVar[str] = "llm_host_down"
    host: str
    model: str
    code: str
    primary: bool


@dataclass(frozen=True)
class LlmHostUp(Event):
    """An LLM host marked down answers again."""

    type: ClassVar[str] = "llm_host_up"
    host: str
    model: str
    primary: bool


@dataclass(frozen=True)
class LlmFallback(Event):
    """A request was answered by a fallback host; `reason` is why the ones before it were skipped."""

    type: ClassVar[str] = "llm_fallback"
    host: str
    model: str
    reason: str


@dataclass(frozen=True)
class Sentence(Event):
    type: ClassVar[str] = "sentence"
    text: str


@dataclass(frozen=True)
class Ringing(Event):
    """A timer or alarm rings (again every `skills.ring_s` until stopped); `t` is when it fell due."""

    type: ClassVar[str] = "ringing"
    kind: str
    """"timer" or "alarm"."""
    id: int
    text: str
    """What is announced after the ring."""
    late: bool
    """It fell due while the device was off."""


@dataclass(frozen=True)
class AudioStarted(Event):
    type: ClassVar[str] = "audio_started"


@dataclass(frozen=True)
class AudioStopped(Event):
    type: ClassVar[str] = "audio_stopped"
    interrupted: bool


@dataclass(frozen=True)
class Error(Event):
    type: ClassVar[str] = "error"
    code: str
    message: str


@dataclass(frozen=True)
class Muted(Event):
    type: ClassVar[str] = "muted"
    muted: bool


@dataclass(frozen=True)
class DeviceLost(Event):
    """A sound device failed at run time; the assistant looks for it again every `retry_in_s` or so."""

    type: ClassVar[str] = "device_lost"
    device: str
    """"microphone" or "speaker"."""
    name: str
    message: str
    retry_in_s: float


@dataclass(frozen=True)
class DeviceRestored(Event):
    """A lost sound device is open again (same configured name, maybe a new index)."""

    type: ClassVar[str] = "device_restored"
    device: str
    name: str
    down_s: float


@dataclass(frozen=True)
class EndOfTurnVerdict(Event):
    """The end-of-turn model's answer during a pause: `t` is when it came back."""

    type: ClassVar[str] = "end_of_turn"
    probability: float
    silence_ms: float
    """The pause, in ms of audio, the model heard when it was asked."""
    ms: float
    """Wall-clock milliseconds the model took."""


@dataclass(frozen=True)
class TurnLatency(Event):
    """Latency breakdown of one turn, in milliseconds (None: did not happen)."""

    type: ClassVar[str] = "turn"
    endpointing_ms: float | None = None
    stt_ms: float | None = None
    llm_first_token_ms: float | None = None
    first_sentence_ms: float | None = None
    tts_ms: float | None = None
    end_of_speech_to_first_audio_ms: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to synchronous subscribers, in subscription order.

    Subscribers must be quick and must not raise; one that raises is logged
    and the others still run.
    """

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                logger.exception("event subscriber %r failed on %s", subscriber, event.type)


class JsonLinesWriter:
    """Writes each event as one JSON object per line (the `--events` file)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: Event) -> None:
        self._stream.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        self._stream.flush()
