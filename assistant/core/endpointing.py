"""Endpointing: where a request starts and ends, from per-block VAD scores.

Pure and clocked by the caller: `process(chunk_s, probability)` takes the
duration of audio the score covers, so tests run on synthetic sequences and
never on the wall clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Endpoint(StrEnum):
    SPEECH_STARTED = "speech_started"
    SPEECH_ENDED = "speech_ended"
    NO_SPEECH = "no_speech"
    TOO_LONG = "too_long"


@dataclass(frozen=True)
class EndpointSettings:
    threshold: float = 0.5
    silence_s: float = 0.7
    complete_silence_s: float | None = None
    trailing_silence_s: float | None = None
    min_speech_s: float = 0.15
    no_speech_timeout_s: float = 5.0
    max_utterance_s: float = 15.0


class Endpointer:
    """Tracks one listening window; feed it every block until it returns an end."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.elapsed_s = 0.0
        self.speech_started_at: float | None = None
        self.last_voice_end: float | None = None
        self._voiced_run = 0.0
        self._hint: bool | None = None
        self.done = False

    @property
    def in_speech(self) -> bool:
        return self.speech_started_at is not None

    @property
    def silence_s(self) -> float:
        """Trailing silence since the last voiced block (0 before speech)."""
        if self.last_voice_end is None:
            return 0.0
        return self.elapsed_s - self.last_voice_end

    def hint(self, complete: bool | None) -> None:
        """Say whether the words so far form a complete request (None: unknown)."""
        self._hint = complete

    def required_silence_s(self) -> float:
        s = self.settings
        if self._hint is True and s.complete_silence_s is not None:
            return s.complete_silence_s
        if self._hint is False and s.trailing_silence_s is not None:
            return s.trailing_silence_s
        return s.silence_s

    def process(self, chunk_s: float, probability: float) -> Endpoint | None:
        """Advance by one block; returns an endpoint event when one happens."""
        if self.done:
            return None
        s = self.settings
        self.elapsed_s += chunk_s
        voiced = probability >= s.threshold
        if not self.in_speech:
            self._voiced_run = self._voiced_run + chunk_s if voiced else 0.0
            if voiced and self._voiced_run >= s.min_speech_s:
                self.speech_started_at = self.elapsed_s - self._voiced_run
                self.last_voice_end = self.elapsed_s
                return Endpoint.SPEECH_STARTED
            if self.elapsed_s >= s.no_speech_timeout_s:
                self.done = True
                return Endpoint.NO_SPEECH
            return None
        if voiced:
            self.last_voice_end = self.elapsed_s
            self._hint = None
        assert self.speech_started_at is not None
        if self.elapsed_s - self.speech_started_at >= s.max_utterance_s:
            self.done = True
            return Endpoint.TOO_LONG
        if not voiced and self.silence_s >= self.required_silence_s() - 1e-9:
            self.done = True
            return Endpoint.SPEECH_ENDED
        return None


_TRAILING = re.compile(
    r"\b(and|or|but|so|because|um+|uh+|er+|erm|like|the|a|an|to|of|with|for|if|then)\W*$",
    re.IGNORECASE,
)


def looks_complete(text: str) -> bool | None:
    """Guess from a speculative transcript whether the request is finished.

    True for a sentence or question that ends cleanly, False when it trails off
    ("and…", "um"), None when the words say nothing either way.
    """
    words = text.strip()
    if not words:
        return None
    if words.endswith(("...", "…", ",", "-")) or _TRAILING.search(words):
        return False
    if words.endswith((".", "?", "!")) and len(words.split()) >= 2:
        return True
    return None
