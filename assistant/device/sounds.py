"""Short feedback sounds the assistant makes itself: synthesised, no files to ship.

Every sound is a few sine notes with a raised-cosine attack and release (no
clicks) at 16 kHz mono float32, like all audio in the core.  They are pitched
high on purpose, above 1 kHz for the chimes and a rough 800 Hz dyad for the
error buzz: tones in the range of a voice's pitch (100-500 Hz), in syllable-like
bursts, are what Silero VAD takes for speech, and the microphone hears the
speaker.  `tests/test_device.py` runs the real VAD over each sound to hold that.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from assistant.config import SoundsConfig
from assistant.core.ports import SAMPLE_RATE, Audio

logger = logging.getLogger(__name__)

NAMES = ("wake", "end_of_listening", "error", "mute_on", "mute_off", "ring")
"""The sounds `Assistant` plays, by the names it looks them up."""

Partials = Sequence[tuple[float, float]]
"""(frequency in Hz, relative amplitude) of the sines in one note."""

Note = tuple[float, Partials, float]
"""(start in seconds, partials, duration in seconds)."""

_ATTACK_S = 0.01
_RELEASE_S = 0.03


def _tone(partials: Partials, duration_s: float, *, decay: float) -> Audio:
    """One note: summed sines, exponential decay, raised-cosine attack and release."""
    n = round(duration_s * SAMPLE_RATE)
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    wave = sum((amplitude * np.sin(2 * np.pi * frequency * t) for frequency, amplitude in partials), np.zeros(n))
    envelope = np.exp(-decay * t)
    attack, release = min(n, int(_ATTACK_S * SAMPLE_RATE)), min(n, int(_RELEASE_S * SAMPLE_RATE))
    envelope[:attack] *= 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, attack))
    envelope[n - release :] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, release))
    result: Audio = (wave * envelope).astype(np.float32)
    return result


def _mix(notes: Sequence[Note], volume: float, *, decay: float = 6.0) -> Audio:
    """Mix notes at their start times and scale the peak to `volume`."""
    length = max(round((start + duration) * SAMPLE_RATE) for start, _, duration in notes)
    out = np.zeros(length, dtype=np.float32)
    for start, partials, duration in notes:
        note = _tone(partials, duration, decay=decay)
        offset = round(start * SAMPLE_RATE)
        out[offset : offset + len(note)] += note[: length - offset]
    peak = float(np.max(np.abs(out))) or 1.0
    scaled: Audio = (out * (volume / peak)).astype(np.float32)
    return scaled


def _bell(frequency: float) -> Partials:
    """A soft bell: the fundamental and a faint octave."""
    return ((frequency, 1.0), (2 * frequency, 0.15))


_E6, _G6, _A6, _C7 = 1318.5, 1568.0, 1760.0, 2093.0
_C6, _D6 = 1046.5, 1174.7
_BUZZ: Partials = ((800.0, 1.0), (860.0, 0.8))  # 60 Hz beating: heard as a buzz


def synthesize(name: str, volume: float = 0.5) -> Audio:
    """Make one named sound (see `NAMES`) with its peak at `volume` (0..1)."""
    if name == "wake":  # rising two-tone chime
        return _mix([(0.0, _bell(_E6), 0.12), (0.09, _bell(_A6), 0.16)], volume)
    if name == "end_of_listening":  # the same two notes, falling
        return _mix([(0.0, _bell(_A6), 0.12), (0.09, _bell(_E6), 0.16)], volume)
    if name == "error":  # a lower double buzz
        return _mix([(0.0, _BUZZ, 0.11), (0.17, _BUZZ, 0.11)], volume, decay=0.0)
    if name == "mute_on":  # three notes descending
        return _mix([(0.0, _bell(_C7), 0.09), (0.08, _bell(_G6), 0.09), (0.16, _bell(_C6), 0.14)], volume)
    if name == "mute_off":  # three notes ascending
        return _mix([(0.0, _bell(_D6), 0.09), (0.08, _bell(_G6), 0.09), (0.16, _bell(_C7), 0.14)], volume)
    if name == "ring":  # a timer or alarm: four quick bell pairs, like a clock's double ring
        pairs = [(0.3 * i + offset, _bell(note), 0.1) for i in range(4) for offset, note in ((0.0, _C7), (0.12, _A6))]
        return _mix(pairs, volume, decay=4.0)
    raise ValueError(f"unknown sound {name!r}; known: {', '.join(NAMES)}")


def load_sounds(cfg: SoundsConfig, *, wake_chime: bool = False) -> dict[str, Audio]:
    """The enabled sounds by name; `wake` is on with `sounds.wake` or `conversation.wake_chime`."""
    enabled = {
        "wake": cfg.wake or wake_chime,
        "end_of_listening": cfg.end_of_listening,
        "error": cfg.error,
        "mute_on": cfg.mute_on,
        "mute_off": cfg.mute_off,
        "ring": cfg.ring,
    }
    sounds = {name: synthesize(name, cfg.volume) for name, on in enabled.items() if on and cfg.volume > 0}
    logger.debug("sounds: %s", ", ".join(sounds) or "none")
    return sounds
