"""The turn-taking set: complete requests and requests with a pause in the middle, in several voices.

Each utterance is one WAV: room noise, "hey jarvis", the request's first
part, a pause (none for complete requests), the second part, then silence
for the reply. The positions of every part are recorded in samples, so "end
of speech" and "the words after the pause" are known exactly, independent of
the VAD. `write_turnset` makes the files; `assistant.bench.turntaking` runs
them through the assistant.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio.wav import read_wav, write_wav
from assistant.bench.script import VOICED, ToolMissing, pink_noise
from assistant.core.ports import SAMPLE_RATE, Audio

WAKE_TEXT = "hey jarvis"

# (first part, pause in seconds, second part); complete requests have no pause and no second part.
COMPLETE: tuple[tuple[str, float, str], ...] = tuple(
    (text, 0.0, "")
    for text in (
        "What is the capital of France?",
        "What time is it?",
        "Turn on the kitchen lights.",
        "How far away is the moon?",
        "Set a timer for ten minutes.",
        "What's the weather like tomorrow?",
        "Play some relaxing music.",
        "Who wrote Pride and Prejudice?",
        "How many ounces are in a pound?",
        "Remind me to call my sister tonight.",
        "What is the square root of eighty one?",
        "Tell me a joke.",
        "Turn off the bedroom lights.",
        "How do you say thank you in Spanish?",
        "What day is it today?",
        "When does the sun set today?",
        "Add milk to my shopping list.",
        "How tall is Mount Everest?",
        "What is the boiling point of water?",
        "Call my mother.",
        "Is it going to rain this afternoon?",
        "Who is the president of France?",
    )
)
PAUSED: tuple[tuple[str, float, str], ...] = (
    ("remind me to", 0.9, "call my sister"),
    ("what's the weather in", 0.8, "Paris"),
    ("set a timer for, um", 1.0, "ten minutes"),
    ("tell me about the", 0.7, "history of Rome"),
    ("turn on the", 0.6, "living room lights"),
    ("what is the capital of", 1.1, "Australia"),
    ("play some music by", 0.9, "the Beatles"),
    ("how many days are in", 0.7, "a leap year"),
    ("add eggs and", 1.2, "butter to my list"),
    ("call my, um", 1.0, "brother"),
    ("what's the time in", 0.8, "Tokyo"),
    ("can you tell me how to", 1.1, "boil an egg"),
    ("set an alarm for", 0.6, "seven in the morning"),
    ("who was the first person to", 1.0, "walk on the moon"),
    ("translate good morning into", 0.9, "German"),
    ("how far is it from London to", 1.2, "Edinburgh"),
    ("send a message to", 0.7, "my wife"),
    ("what is the population of", 0.8, "Canada"),
    ("turn the volume up to", 1.0, "fifty percent"),
    ("remind me about the", 1.1, "dentist on Friday"),
    ("what's a good recipe for", 0.6, "pancakes"),
)
TURN_SET = COMPLETE + PAUSED

# espeak-ng (voice, words per minute); "piper" is the real Piper voice through the assistant's own TTS.
VOICES: tuple[tuple[str, int], ...] = (("en-us", 150), ("en-gb", 165), ("en-us+f3", 140), ("en-us+m3", 175))
PIPER = ("piper", 0)

LEAD_S, GAP_S, TAIL_S = 1.0, 0.3, 5.0


@dataclass(frozen=True)
class Utterance:
    """One WAV of the set, with where its parts lie (seconds on its timeline)."""

    path: str
    first: str
    pause_s: float
    second: str
    voice: str
    speech_start_s: float
    first_end_s: float
    second_start_s: float | None
    speech_end_s: float

    @property
    def paused(self) -> bool:
        return bool(self.second)

    @property
    def text(self) -> str:
        return f"{self.first} {self.second}".strip()


def _trim(audio: Audio) -> Audio:
    voiced = np.flatnonzero(np.abs(audio) > VOICED)
    return audio[voiced[0] : voiced[-1] + 1].copy() if len(voiced) else audio


def espeak(text: str, voice: str, speed: int, folder: Path) -> Audio:
    """espeak-ng speech at 16 kHz, trimmed to its voiced samples."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} is needed to make the turn-taking set (apt install espeak-ng sox)")
    raw, wav = folder / "part.raw.wav", folder / "part.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav)], check=True)
    return _trim(read_wav(wav))


def write_turnset(
    folder: Path,
    *,
    piper: Any = None,
    items: Sequence[tuple[str, float, str]] = TURN_SET,
    noise_rms: float = 0.003,
) -> list[Utterance]:
    """Write one WAV per item (voices taken in turn; `piper` is a TextToSpeech for the Piper voice)."""
    folder.mkdir(parents=True, exist_ok=True)
    voices = [*VOICES, *([PIPER] if piper is not None else [])]
    wake = espeak(WAKE_TEXT, "en-us", 150, folder)  # espeak-ng's "hey jarvis" is known to wake the model
    made: list[Utterance] = []
    for index, (first, pause_s, second) in enumerate(items):
        voice, speed = voices[index % len(voices)]

        def say(text: str, voice: str = voice, speed: int = speed) -> Audio:
            if voice == "piper":
                return _trim(np.asarray(piper.synthesize(text), np.float32))
            return espeak(text, voice, speed, folder)

        parts = [
            np.zeros(round(LEAD_S * SAMPLE_RATE), np.float32),
            wake,
            np.zeros(round(GAP_S * SAMPLE_RATE), np.float32),
        ]
        start = sum(map(len, parts))
        parts.append(say(first))
        first_end = sum(map(len, parts))
        second_start: int | None = None
        if second:
            parts.append(np.zeros(round(pause_s * SAMPLE_RATE), np.float32))
            second_start = sum(map(len, parts))
            parts.append(say(second))
        end = sum(map(len, parts))
        parts.append(np.zeros(round(TAIL_S * SAMPLE_RATE), np.float32))
        audio = np.concatenate(parts)
        if noise_rms > 0:
            audio = audio + pink_noise(len(audio) / SAMPLE_RATE, noise_rms, seed=index)
        path = folder / f"turn-{index:02d}.wav"
        write_wav(path, audio)
        made.append(
            Utterance(
                str(path),
                first,
                pause_s,
                second,
                f"{voice}@{speed}" if voice != "piper" else "piper:en_US-joe-medium",
                start / SAMPLE_RATE,
                first_end / SAMPLE_RATE,
                None if second_start is None else second_start / SAMPLE_RATE,
                end / SAMPLE_RATE,
            )
        )
    (folder / "turnset.json").write_text(json.dumps([asdict(u) for u in made], indent=1), encoding="utf-8")
    return made
