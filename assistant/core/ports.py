"""The small interfaces every engine and device meets.

The core only ever talks to these; the real adapters live in
`assistant.engines`, `assistant.audio` and `assistant.device`, and tests build
the same core with fakes.  All audio inside the core is mono float32 in
[-1, 1] at `SAMPLE_RATE`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
"""The internal sample rate, in Hz, of everything the core sees."""

BLOCK_SAMPLES = 1280
"""One microphone block: 80 ms at 16 kHz, what openWakeWord consumes."""

Audio = npt.NDArray[np.float32]
"""Mono float32 samples in [-1, 1]."""


@dataclass(frozen=True)
class ToolCall:
    """The LLM asks for one function: its name and arguments (as the model wrote them)."""

    name: str
    arguments: dict[str, Any]
    id: str = ""
    """The call's id where there is one (the realtime wire's ``call_id``)."""


@dataclass(frozen=True)
class Message:
    """One chat message as the LLM sees it.

    An assistant message may carry the `tool_calls` it made; a ``tool`` message is
    one call's result, `tool_name` naming the function.
    """

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_name: str | None = None


@dataclass(frozen=True)
class WakeHit:
    """A wake-word model scored over its threshold on one block."""

    model: str
    score: float


@dataclass(frozen=True)
class Health:
    """One row of `assistant check`: a part, whether it works, and the fix."""

    part: str
    ok: bool
    detail: str
    fix: str = ""


class Clock(Protocol):
    """Time as seconds of microphone audio, shared by the mic and speaker."""

    def now(self) -> float: ...


class WakeDetector(Protocol):
    """Scores each 80 ms block; returns a hit when a model fires."""

    def process(self, block: Audio) -> WakeHit | None: ...


class VoiceActivity(Protocol):
    """Probability of speech (Silero VAD or alike), per block or per window.

    Endpointing uses `windows` for finer timing than a whole block gives.
    """

    window_s: float

    def windows(self, block: Audio) -> list[float]: ...

    def process(self, block: Audio) -> float: ...

    def reset(self) -> None: ...


class SpeechToText(Protocol):
    """Transcribes one utterance (blocking; run it in a worker thread).

    Setting `cancel` abandons the call: it raises `SpeechToTextCancelled`
    instead of finishing (see `core.work.run_abortable`).
    """

    def transcribe(self, audio: Audio, *, cancel: threading.Event | None = None) -> str: ...


@dataclass(frozen=True)
class TokenUsage:
    """Token counts of one reply (Ollama's ``prompt_eval_count`` and ``eval_count``)."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class LlmOptions:
    """Per-request settings for the LLM; None keeps the configured value."""

    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    on_usage: Callable[[TokenUsage], None] | None = None
    """Told the token counts once the reply is complete (from Ollama's final chunk)."""
    tools: Sequence[Mapping[str, Any]] = ()
    """Functions the model may call: ``{"type": "function", "function": {name, description, parameters}}``
    (the shape Ollama and OpenAI share)."""
    call_tool: Callable[[ToolCall], Awaitable[str | None]] | None = None
    """Runs one call and returns its result for the model; None: the call was handed on (a realtime
    client's own function), and the reply ends after this round. Unset: calls are not run."""


class LanguageModel(Protocol):
    """Streams a chat reply; raises `TurnError` subclasses on failure."""

    def stream(self, messages: Sequence[Message], options: LlmOptions | None = None) -> AsyncGenerator[str, None]:
        """Yield the reply piece by piece; closing the iterator stops the request."""
        ...

    async def warm(self, messages: Sequence[Message], options: LlmOptions | None = None) -> None:
        """Load the model and cache the prompt prefix `messages`; never raises."""
        ...

    async def health(self) -> list[Health]:
        """Rows for `assistant check`."""
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks (a later call opens new ones)."""
        ...


class TextToSpeech(Protocol):
    """Synthesises one chunk of text to audio at `SAMPLE_RATE` (blocking)."""

    def synthesize(self, text: str) -> Audio: ...


class Microphone(Protocol):
    """Yields `BLOCK_SAMPLES` blocks at `SAMPLE_RATE`, advancing the clock.

    A file input sets `exhausted` once it has ended and then yields silence,
    so replies in flight can finish on the same clock.
    """

    exhausted: bool

    def blocks(self) -> AsyncIterator[Audio]: ...


class Speaker(Protocol):
    """Plays audio at `SAMPLE_RATE` in short blocks, paced by the device."""

    async def play(self, audio: Audio) -> float:
        """Hand audio to the device block by block; return when all was taken.

        Returns the clock time at which its first sample sounds.
        """
        ...

    def queued_until(self) -> float:
        """Clock time at which everything handed over so far has sounded."""
        ...

    async def drain(self) -> float:
        """Wait until everything queued has played; return the clock time."""
        ...

    def stop(self) -> float:
        """Drop what has not played yet (barge-in); return the clock time."""
        ...


class TurnDetector(Protocol):
    """Hears whether the speaker has finished (Smart Turn or alike; blocking).

    Takes the request so far (the last seconds of it are what count) and
    returns the probability, 0-1, that the turn is complete.
    """

    def finished(self, audio: Audio) -> float: ...


# --- the engines as the composition root holds them ---------------------------------
# The core needs only the small ports above; what loads, checks and shares the engines
# (the app, `assistant check`, the realtime server) needs these few methods more.


class Checked(Protocol):
    """An engine that can say how it is for `assistant check`."""

    def health(self) -> list[Health]: ...


class LoadedWake(WakeDetector, Checked, Protocol):
    """A wake-word engine as loaded."""


class LoadedVad(VoiceActivity, Checked, Protocol):
    """A VAD as loaded; `fresh` gives another with its own state (one per realtime session)."""

    def fresh(self) -> LoadedVad: ...


class LoadedStt(SpeechToText, Checked, Protocol):
    """Speech to text as loaded; `warm` pays the set-up cost at start-up."""

    def warm(self) -> None: ...


class LoadedTts(TextToSpeech, Checked, Protocol):
    """A voice as loaded: also at its own sample rate (the realtime wire resamples once, from that)."""

    def synthesize_native(self, text: str) -> tuple[Audio, int]: ...

    def warm(self) -> None: ...


class LoadedTurn(TurnDetector, Checked, Protocol):
    """An end-of-turn model as loaded."""

    def warm(self) -> None: ...


class SkillAnswer(Protocol):
    """A request the device answered itself (`assistant.skills.SkillReply` meets this)."""

    @property
    def text(self) -> str:
        """What to say ("" for nothing)."""
        ...

    @property
    def action(self) -> str:
        """ "speak", "stop" (silence speech and ringing), "repeat" or "volume" (the gain has changed)."""
        ...


class Ring(Protocol):
    """A timer or alarm that rings now (`assistant.skills.Ringing` meets this)."""

    @property
    def id(self) -> int: ...

    @property
    def kind(self) -> str:
        """ "timer" or "alarm"."""
        ...

    @property
    def text(self) -> str:
        """What to announce ("Your 10 minute timer is done.")."""
        ...

    @property
    def late(self) -> bool:
        """It fell due while the device was off."""
        ...


class DeviceTools(Protocol):
    """The device's functions offered to the LLM (`assistant.skills.Skills` meets this)."""

    def tools(self) -> Sequence[Mapping[str, Any]]:
        """The function definitions (none when the skills are off)."""
        ...

    def call_tool(self, name: str, arguments: Any, now: float) -> str:
        """Run one call at audio time `now`; bad arguments come back as an ``error: ...`` text, never raise."""
        ...


class LocalSkills(Protocol):
    """The device's own requests, answered without the LLM; timers and alarms on the audio clock."""

    @property
    def ringing(self) -> bool:
        """Something rings (until "stop", the wake word or its time-out)."""
        ...

    def handle(self, text: str, now: float) -> SkillAnswer | None:
        """The answer to `text`, or None when it is not one of the device's requests."""
        ...

    def due(self, now: float) -> Sequence[Ring]:
        """What rings at audio time `now` (called once per microphone block: cheap)."""
        ...

    def remember(self, text: str) -> None:
        """A reply the user heard: what "repeat that" says again."""
        ...

    def stop_ringing(self) -> bool:
        """Silence what rings; False when nothing did."""
        ...
