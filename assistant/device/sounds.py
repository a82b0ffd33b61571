"""Short feedback sounds the assistant makes itself: synthesised, no files to ship.

Each sound is a few bell-like sine notes with a soft attack and an exponential
decay, 16 kHz mono float32 like every other audio in the core.  They are kept
tonal on purpose (pure partials, no noise, no glottal-like buzz): the
microphone hears them too, and the VAD must not take them for speech.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from assistant.config import SoundsConfig
from assistant.core.ports import SAMPLE_RATE, Audio

log = logging.getLogger(__name__)

NAMES = ("wake", "end_of_listening", "error", "mute_on", "mute_off")
"""The sounds `Assistant` plays, by the names it looks them up."""

Note = tuple[float, float, float]
"""(start in seconds, frequency in Hz, duration in seconds)."""

_ATTACK_S = 0.006
_RELEASE_S = 0.012


def _note(frequency: float, duration_s: float, *, decay: float = 5.0, partials: Sequence[float] = (1.0, 0.25)) -> Audio:
    """One bell-like note: harmonic partials, quick attack, exponential decay, clean ending."""
    n = int(round(duration_s * SAMPLE_RATE))
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    wave = np.zeros(n)
    for k, amplitude in enumerate(partials, start=1):
        if frequency * k < SAMPLE_RATE / 2:
            wave += amplitude * np.sin(2 * np.pi * frequency * k * t)
    envelope = np.exp(-decay * t)
    attack, release = int(_ATTACK_S * SAMPLE_RATE), int(_RELEASE_S * SAMPLE_RATE)
    envelope[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
    envelope[-release:] *= np.linspace(1.0, 0.0, release)
    result: Audio = (wave * envelope).astype(np.float32)
    return result


def _sequence(notes: Sequence[Note], volume: float, make: Callable[[float, float], Audio] | None = None) -> Audio:
    """Mix notes at their start times and scale the peak to `volume`."""
    make = make or (lambda f, d: _note(f, d))
    length = max(int(round((start + duration) * SAMPLE_RATE)) for start, _, duration in notes)
    out = np.zeros(length, dtype=np.float32)
    for start, frequency, duration in notes:
        note = make(frequency, duration)
        offset = int(round(start * SAMPLE_RATE))
        out[offset : offset + len(note)] += note[: length - offset]
    peak = float(np.max(np.abs(out))) or 1.0
    scaled: Audio = (out * (volume / peak)).astype(np.float32)
    return scaled


def _buzz(frequency: float, duration_s: float) -> Audio:
    """A low, slightly rough tone: two close sines beating, no harmonic series like a voice."""
    low = _note(frequency, duration_s, decay=2.0, partials=(1.0,))
    beat = _note(frequency * 1.06, duration_s, decay=2.0, partials=(1.0,))
    mixed: Audio = (low + 0.7 * beat).astype(np.float32)
    return mixed


def synthesize(name: str, volume: float = 0.5) -> Audio:
    """Make one named sound (see `NAMES`) with its peak at `volume` (0..1)."""
    if name == "wake":  # rising two-tone chime: E5 then A5
        return _sequence([(0.0, 659.3, 0.12), (0.09, 880.0, 0.16)], volume)
    if name == "end_of_listening":  # the same two notes, falling
        return _sequence([(0.0, 880.0, 0.12), (0.09, 659.3, 0.16)], volume)
    if name == "error":  # a low double buzz
        return _sequence([(0.0, 220.0, 0.11), (0.17, 220.0, 0.11)], volume, make=_buzz)
    if name == "mute_on":  # descending: G5, D5, G4
        return _sequence([(0.0, 784.0, 0.09), (0.08, 587.3, 0.09), (0.16, 392.0, 0.14)], volume)
    if name == "mute_off":  # ascending: G4, D5, G5
        return _sequence([(0.0, 392.0, 0.09), (0.08, 587.3, 0.09), (0.16, 784.0, 0.14)], volume)
    raise ValueError(f"unknown sound {name!r}; known: {', '.join(NAMES)}")


def load_sounds(cfg: SoundsConfig, *, wake_chime: bool = False) -> dict[str, Audio]:
    """The enabled sounds by name; `wake` is on with `sounds.wake` or `conversation.wake_chime`."""
    enabled = {
        "wake": cfg.wake or wake_chime,
        "end_of_listening": cfg.end_of_listening,
        "error": cfg.error,
        "mute_on": cfg.mute_on,
        "mute_off": cfg.mute_off,
    }
    sounds = {name: synthesize(name, cfg.volume) for name, on in enabled.items() if on and cfg.volume > 0}
    log.debug("sounds: %s", ", ".join(sounds) or "none")
    return sounds
