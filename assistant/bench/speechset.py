"""The speech set: spoken smart-speaker requests, with what was said, in several voices.

Every request is said after "hey jarvis" in the same voice: espeak-ng voices
at several speeds, and the real Piper voice. Half have room noise, half a
pause after the wake word. `render` lays them out on one input timeline for
`assistant run`, remembering where each request's speech ends.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.audio.wav import read_wav
from assistant.bench.script import VOICED, Layout, ToolMissing, pink_noise
from assistant.core.ports import SAMPLE_RATE, Audio

REQUESTS: tuple[str, ...] = (
    "what time is it",
    "what is the date today",
    "set a timer for ten minutes",
    "set a timer for five minutes",
    "cancel the timer",
    "how much time is left on my timer",
    "wake me up at seven tomorrow",
    "set an alarm for six thirty",
    "turn the volume down",
    "turn the volume up",
    "set the volume to five",
    "stop",
    "never mind",
    "repeat that",
    "mute the speaker",
    "what is the capital of France",
    "what is the weather like tomorrow",
    "tell me a joke",
    "how far away is the moon",
    "who wrote romeo and juliet",
    "how many ounces are in a pound",
    "what is the square root of sixty four",
    "how do you make pancakes",
    "what is the tallest mountain in the world",
    "play some music",
    "remind me to call my sister",
    "what day is it",
    "how long do I boil an egg",
    "translate good morning into spanish",
    "what is the population of japan",
    "who is the president of france",
    "spell the word necessary",
    "how many days are in a leap year",
    "what is twelve times twelve",
    "tell me something interesting",
    "what does a bee eat",
    "when does the sun set today",
    "give me a recipe for soup",
    "how old is the universe",
    "what is the speed of light",
    "turn on the kitchen lights",
    "is it going to rain today",
    "add milk to my shopping list",
    "what can you do",
    "good night",
    "thank you",
    "pause the timer",
    "what is the boiling point of water",
)


@dataclass(frozen=True)
class Voice:
    """Who says a request: an espeak-ng voice at a speed, or a Piper voice (`engine` "piper")."""

    engine: str
    name: str
    speed: int = 150

    @property
    def label(self) -> str:
        return f"{self.name}@{self.speed}" if self.engine == "espeak" else f"piper:{self.name}"


VOICES: tuple[Voice, ...] = (
    Voice("espeak", "en-us", 150),
    Voice("espeak", "en-us+m3", 175),
    Voice("espeak", "en-gb", 140),
    Voice("espeak", "en-us+f3", 160),
    Voice("piper", "joe"),
)


@dataclass(frozen=True)
class SpeechItem:
    """One request of the set, as said."""

    text: str
    voice: Voice
    noise: bool
    pause_s: float  # silence between the wake word and the request


def items(count: int | None = None) -> list[SpeechItem]:
    """The set: every request, the voices, noise and pauses spread evenly over it."""
    chosen = REQUESTS if count is None else REQUESTS[:count]
    out = []
    for i, text in enumerate(chosen):
        voice = VOICES[i % len(VOICES)]
        # Noise and pause alternate on different periods, so every voice gets every mix.
        out.append(SpeechItem(text, voice, noise=(i // 2) % 2 == 0, pause_s=0.35 if (i // 3) % 2 else 0.0))
    return out


class Synthesizer(Protocol):
    def synthesize(self, text: str) -> Audio: ...


def _trim(audio: Audio, level: float) -> Audio:
    voiced = np.flatnonzero(np.abs(audio) > level)
    if not len(voiced):
        return audio
    return audio[voiced[0] : voiced[-1] + 1].copy()


def say(text: str, voice: Voice, folder: Path, piper: Synthesizer | None) -> Audio:
    """`text` in `voice` at 16 kHz, trimmed to its voiced samples."""
    if voice.engine == "piper":
        if piper is None:
            raise ToolMissing("the Piper voice is needed for the speech set")
        return _trim(np.asarray(piper.synthesize(text), np.float32), 0.01)
    raw = folder / "say.wav"
    try:
        subprocess.run(
            ["espeak-ng", "-v", voice.name, "-s", str(voice.speed), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
    except FileNotFoundError:
        raise ToolMissing("espeak-ng is needed to make the speech set (apt install espeak-ng)") from None
    return _trim(read_wav(raw), VOICED)


@dataclass(frozen=True)
class Placed:
    """A request on the input timeline (samples)."""

    item: SpeechItem
    wake_start: int
    request_start: int
    speech_end: int


def render(
    chosen: list[SpeechItem],
    piper: Synthesizer | None,
    *,
    after_s: float = 8.0,
    noise_rms: float = 0.004,
) -> tuple[Audio, list[Placed]]:
    """One input with every request, `after_s` of silence after each for the reply.

    The reply must be over before the next wake word, or that wake word cuts it and the turn's
    figures land in the next request's window: the full-window Whisper pass alone takes 1.2 s on
    a fast 2-core machine and 4 s on a slow one. Silence while idle costs little (`fast` input).
    """
    layout = Layout()
    placed: list[Placed] = []
    noisy: list[tuple[int, int]] = []
    with tempfile.TemporaryDirectory(prefix="speechset-") as tmp:
        folder = Path(tmp)
        for item in chosen:
            layout.silence(1.5)
            begin = layout.length
            wake = layout.add(say("hey jarvis", item.voice, folder, piper))
            layout.silence(item.pause_s)
            request = say(item.text, item.voice, folder, piper)
            start = layout.add(request)
            placed.append(Placed(item, wake, start, start + len(request)))
            layout.silence(after_s)
            if item.noise:
                noisy.append((begin - SAMPLE_RATE, layout.length))
    audio = np.concatenate(layout.parts)
    for first, last in noisy:
        audio[first:last] += pink_noise((last - first) / SAMPLE_RATE, noise_rms, seed=first)
    return audio, placed
