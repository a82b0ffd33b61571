"""Instrumentation: every event, clock tick, speaker write and engine call, with `perf_counter` stamps.

Nothing in the core is changed: the bus gets one more subscriber, and the
clock's `advance`, the WAV speaker's `_write` / `stop` and the STT / TTS
engines are wrapped on the instances the runtime already holds.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.app import Runtime
from assistant.audio.wav import WavSpeaker
from assistant.core.ports import SAMPLE_RATE, Audio
from assistant.events import Event

perf = time.perf_counter


@dataclass(frozen=True)
class Call:
    """One blocking engine call: when it ran (perf seconds) and what it was given."""

    start: float
    end: float
    what: str
    samples: int = 0  # audio made (TTS) or given (STT)


class TimedStt:
    """Wraps the STT engine, recording each transcription's compute time."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[Call] = []

    def transcribe(self, audio: Audio, **kwargs: Any) -> str:
        start = perf()
        try:
            return str(self.inner.transcribe(audio, **kwargs))
        finally:
            self.calls.append(Call(start, perf(), f"{len(audio) / SAMPLE_RATE:.2f}s", len(audio)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class TimedTts:
    """Wraps the TTS engine, recording each chunk's synthesis time."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[Call] = []

    def synthesize(self, text: str) -> Audio:
        start = perf()
        audio: Audio = self.inner.synthesize(text)
        self.calls.append(Call(start, perf(), text, len(audio)))
        return audio

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass(frozen=True)
class Write:
    """Reply audio handed to the speaker: timeline samples [position, end) at wall time `at`."""

    at: float
    position: int
    end: int


@dataclass(frozen=True)
class Stop:
    """A speaker stop (barge-in): wall time, clock samples then, and what was queued."""

    at: float
    now: int
    cursor: int


@dataclass
class Probe:
    """What one runtime did, stamped with `perf_counter` seconds."""

    events: list[tuple[float, Event]] = field(default_factory=list)
    ticks_samples: list[int] = field(default_factory=list)
    ticks_at: list[float] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    keep_audio: bool = True
    on_event: Callable[[Event], None] | None = None

    def attach(self, runtime: Runtime) -> None:
        runtime.bus.subscribe(self._record)
        clock = runtime.clock
        advance = clock.advance

        def timed_advance(n_samples: int) -> None:
            advance(n_samples)
            self.ticks_samples.append(clock.samples)
            self.ticks_at.append(perf())

        setattr(clock, "advance", timed_advance)  # noqa: B010 (an instance attribute shadows the method)
        speaker = runtime.speaker
        if isinstance(speaker, WavSpeaker):
            self._hook_speaker(speaker)

    def _record(self, event: Event) -> None:
        self.events.append((perf(), event))
        if self.on_event is not None:
            self.on_event(event)

    def _hook_speaker(self, speaker: WavSpeaker) -> None:
        write, stop = speaker._write, speaker.stop

        def timed_write(position: int, block: Audio) -> None:
            if self.keep_audio:
                write(position, block)
            else:  # a long soak: count the audio, keep no timeline (a real speaker keeps none)
                speaker._last_written = max(speaker._last_written, position + len(block))
            self.writes.append(Write(perf(), position, position + len(block)))
            if not self.keep_audio and len(self.writes) > 10_000:
                del self.writes[:5_000]

        def timed_stop() -> float:
            at, cursor = perf(), speaker._cursor
            stopped = stop()
            self.stops.append(Stop(at, round(stopped * SAMPLE_RATE), cursor))
            return stopped

        setattr(speaker, "_write", timed_write)  # noqa: B010
        setattr(speaker, "stop", timed_stop)  # noqa: B010

    # -- time conversions ------------------------------------------------------
    def wall_of_sample(self, sample: int) -> float | None:
        """Wall time at which input sample `sample` arrived (blocks arrive paced in real time)."""
        index = bisect.bisect_left(self.ticks_samples, sample)
        if index >= len(self.ticks_samples):
            return None
        return self.ticks_at[index] - (self.ticks_samples[index] - sample) / SAMPLE_RATE

    def of(self, kind: str) -> list[tuple[float, Event]]:
        return [(at, e) for at, e in self.events if e.type == kind]


def monotonic_to_perf() -> float:
    """Offset to add to a `time.monotonic` stamp (the test server's) to get `perf_counter` time."""
    samples = []
    for _ in range(5):
        a = perf()
        m = time.monotonic()
        b = perf()
        samples.append(((a + b) / 2 - m, b - a))
    return min(samples, key=lambda s: s[1])[0]


def read_status(key: str) -> float:
    """A /proc/self/status memory figure (VmRSS, VmHWM) in MB; 0 where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
