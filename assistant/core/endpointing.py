"""Endpointing: where a request starts and ends, from per-block VAD scores.

Pure and clocked by the caller: `process(chunk_s, probability)` takes the
duration of audio the score covers, so tests run on synthetic sequences and
never on the wall clock.

With an end-of-turn model (`turn_check_s` set) the fixed silence gives way
to a conversation: once the pause reaches `turn_check_s`, `turn_check_due()`
says the model should be asked; the caller runs it (off the loop) and hands
back `turn_verdict(key, probability)`. "Finished" ends the turn at the next
silent block; "not finished" asks again every `turn_recheck_s` and the turn
ends at `turn_max_silence_s` regardless. A speculative transcript (`hint`)
that trails off overrules "finished", and with `turn_needs_hint` the turn
waits for that transcript before it ends early.
"""

from __future__ import annotations

import re
from collections import deque
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
    turn_check_s: float | None = None
    """Silence before the end-of-turn model is first asked (None: no model, fixed silence)."""
    turn_recheck_s: float = 0.1
    turn_max_silence_s: float = 1.6
    turn_threshold: float = 0.5
    turn_needs_hint: bool = False
    """End early only once the speculative transcript has been heard (and does not trail off)."""


class Endpointer:
    """Tracks one listening window; feed it every block until it returns an end."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.elapsed_s = 0.0
        self.speech_started_at: float | None = None
        self.last_voice_end: float | None = None
        self._voiced_run = 0.0
        self._pauses: deque[tuple[float, float]] = deque(maxlen=8)  # (length, when speech resumed)
        self._hint: bool | None = None
        self._heard = False  # a hint has arrived for this pause
        self._asked_at: float | None = None  # the silence at which the model was last asked
        self._finished: bool | None = None  # the model's verdict on this pause
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

    def resumed_after_pause(self, at_least_s: float, within_s: float) -> bool:
        """Speech resumed, in the last `within_s`, after a pause of at least `at_least_s` in the request."""
        return any(
            length >= at_least_s - 1e-9 and self.elapsed_s - resumed <= within_s + 1e-9
            for length, resumed in self._pauses
        )

    def hint(self, complete: bool | None) -> None:
        """Say whether the words so far form a complete request (None: unknown)."""
        self._hint = complete
        self._heard = True

    # -- the end-of-turn model -------------------------------------------------
    def turn_check_due(self) -> bool:
        """The pause is long enough (again) to ask the end-of-turn model."""
        s = self.settings
        if s.turn_check_s is None or self.done or not self.in_speech or self._finished:
            return False
        silence = self.silence_s
        if silence < s.turn_check_s - 1e-9:
            return False
        return self._asked_at is None or silence - self._asked_at >= s.turn_recheck_s - 1e-9

    def turn_check_started(self) -> float | None:
        """Note that the model is being asked now; returns the key to pass back with its verdict."""
        self._asked_at = self.silence_s
        return self.last_voice_end

    def turn_verdict(self, key: float | None, probability: float) -> None:
        """The model's probability that the turn is finished, for the pause `key` names."""
        if key == self.last_voice_end and not self.done:
            self._finished = probability >= self.settings.turn_threshold

    def _turn_ended(self) -> bool:
        s = self.settings
        if self.silence_s >= s.turn_max_silence_s - 1e-9:
            return True
        if not self._finished or self._hint is False:
            return False
        return self._heard or not s.turn_needs_hint

    def required_silence_s(self) -> float:
        s = self.settings
        if s.turn_check_s is not None:
            return s.turn_max_silence_s
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
            if self.silence_s > chunk_s + 1e-9:  # speech again after a pause
                self._pauses.append((self.silence_s - chunk_s, self.elapsed_s - chunk_s))
            self.last_voice_end = self.elapsed_s
            self._hint, self._heard = None, False
            self._asked_at = self._finished = None
        assert self.speech_started_at is not None
        if self.elapsed_s - self.speech_started_at >= s.max_utterance_s:
            self.done = True
            return Endpoint.TOO_LONG
        if voiced:
            return None
        if s.turn_check_s is not None:
            ended = self._turn_ended()
        else:
            ended = self.silence_s >= self.required_silence_s() - 1e-9
        if ended:
            self.done = True
            return Endpoint.SPEECH_ENDED
        return None


# "too": how Whisper often writes a trailing "to" ("Remind me too.").
_TRAILING = re.compile(
    r"\b(and|or|but|so|because|um+|uh+|er+|erm|like|the|a|an|to|too|of|with|for|if|then|in|at|about|from|my|your)"
    r"\W*$",
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
