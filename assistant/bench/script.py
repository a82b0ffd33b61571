"""The benchmark's input: espeak-ng speech and room noise laid out on one timeline.

Every cue records where its request's last voiced sample lies in the WAV, so
"end of speech" is known exactly, independent of the VAD.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio.wav import read_wav, write_wav
from assistant.core.ports import SAMPLE_RATE, Audio
from assistant.core.sentences import SentenceSplitter, clean_for_speech

WAKE_TEXT = "hey jarvis"
REQUEST_TEXT = "please tell me what the capital of France is"
OTHER_TEXT = "the weather is nice today and the birds are singing in the garden"
REPLY = (
    "The capital of France is Paris, a city on the river Seine. "
    "It has been the capital for more than a thousand years. "
    "Paris is famous for the Eiffel Tower and the Louvre. "
    "Millions of people visit it every year."
)
VOICED = 1e-3  # |sample| above this counts as voiced (espeak-ng writes exact digital silence)


class ToolMissing(RuntimeError):
    pass


def speak(text: str, folder: Path, name: str) -> Audio:
    """espeak-ng speech at 16 kHz, trimmed to its first and last voiced samples."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise ToolMissing(f"{tool} is needed to make the benchmark's speech (apt install espeak-ng sox)")
    raw, wav = folder / f"{name}.raw.wav", folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav)], check=True)
    audio = read_wav(wav)
    voiced = np.flatnonzero(np.abs(audio) > VOICED)
    return audio[voiced[0] : voiced[-1] + 1].copy()


def pink_noise(seconds: float, rms: float, seed: int) -> Audio:
    """Pink (1/f) noise at the given RMS level: a quiet room."""
    n = max(1, round(seconds * SAMPLE_RATE))
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    noise = np.fft.irfft(spectrum, n)
    noise *= rms / max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    return noise.astype(np.float32)


@dataclass
class Phrases:
    wake: Audio
    request: Audio
    other: Audio

    @classmethod
    def make(cls, folder: Path | None = None) -> Phrases:
        with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp:
            where = folder or Path(tmp)
            return cls(
                speak(WAKE_TEXT, where, "wake"),
                speak(REQUEST_TEXT, where, "request"),
                speak(OTHER_TEXT, where, "other"),
            )


@dataclass(frozen=True)
class Cue:
    """One scripted request: positions in samples on the input (= clock) timeline."""

    kind: str  # "turn" or "barge"
    wake_start: int
    request_start: int
    speech_end: int  # one past the last voiced sample of the request


@dataclass
class Layout:
    """Builds one input WAV piece by piece, remembering the cues."""

    parts: list[Audio] = field(default_factory=list)
    cues: list[Cue] = field(default_factory=list)
    length: int = 0
    wakes: int = 0  # wake words in the file (barge-ins included)

    def add(self, audio: Audio) -> int:
        start = self.length
        self.parts.append(np.asarray(audio, np.float32))
        self.length += len(audio)
        return start

    def silence(self, seconds: float) -> None:
        self.add(np.zeros(max(0, round(seconds * SAMPLE_RATE)), np.float32))

    def pad_to(self, sample: int) -> None:
        self.add(np.zeros(max(0, sample - self.length), np.float32))

    def request(self, phrases: Phrases, kind: str, gap_s: float = 0.3) -> Cue:
        """ "hey jarvis", a short gap, the request; returns its cue."""
        wake = self.add(phrases.wake)
        self.wakes += 1
        self.silence(gap_s)
        start = self.add(phrases.request)
        cue = Cue(kind, wake, start, start + len(phrases.request))
        self.cues.append(cue)
        return cue

    def write(self, path: Path, noise_rms: float = 0.0) -> Path:
        audio = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        if noise_rms > 0:
            audio = audio + pink_noise(len(audio) / SAMPLE_RATE, noise_rms, seed=len(audio))
        write_wav(path, audio)
        return path

    @property
    def seconds(self) -> float:
        return self.length / SAMPLE_RATE


def seconds(s: float) -> int:
    return round(s * SAMPLE_RATE)


@dataclass(frozen=True)
class ReplyPlan:
    """How a reply streams: its tokens and where the first spoken chunk completes."""

    tokens: list[str]
    chunks: list[str]
    first_text_tokens: int  # tokens that hold the first chunk's text
    first_emit_tokens: int  # tokens the splitter needs before it hands the chunk over

    @classmethod
    def of(cls, reply: str, first_chunk_min_chars: int) -> ReplyPlan:
        from assistant.testing.ollama_server import split_tokens  # the server's own tokenizer

        tokens = split_tokens(reply)
        splitter = SentenceSplitter(first_chunk_min_chars)
        chunks: list[str] = []
        emit = len(tokens)
        for index, token in enumerate(tokens):
            done = splitter.push(token)
            if done and not chunks:
                emit = index + 1
            chunks += done
        if not chunks:
            emit = len(tokens)
        chunks += splitter.flush()
        first = chunks[0] if chunks else ""
        text = next(
            (n for n in range(1, len(tokens) + 1) if clean_for_speech("".join(tokens[:n])).startswith(first)),
            len(tokens),
        )
        return cls(tokens, chunks, text, emit)


def turns_layout(phrases: Phrases, count: int, reply_s: float, reply_delay_s: float) -> Layout:
    """`count` whole turns, each started only after the previous reply has played out."""
    layout = Layout()
    layout.silence(1.0)
    for index in range(count):
        # Vary where the speech ends within the 80 ms microphone blocks, turn by turn.
        cue = layout.request(phrases, "turn", gap_s=0.3 + (index * 0.031) % 0.08)
        layout.pad_to(cue.speech_end + seconds(reply_delay_s + reply_s + 1.0))
    return layout


def barge_layout(phrases: Phrases, count: int, reply_delay_s: float, no_speech_s: float) -> Layout:
    """`count` turns with long replies, each interrupted by the next "hey jarvis"."""
    layout = Layout()
    layout.silence(1.0)
    for index in range(count):
        cue = layout.request(phrases, "barge")
        layout.pad_to(cue.speech_end + seconds(reply_delay_s + 1.5))
        if index == count - 1:  # the last barge-in: the wake word alone, then nothing
            layout.add(phrases.wake)
            layout.wakes += 1
            layout.silence(no_speech_s + 1.5)
    return layout


def thinking_barge_layout(phrases: Phrases, pairs: int, reply_s: float, reply_delay_s: float) -> Layout:
    """Ordinary turns, each followed by a request interrupted while thinking by a second one.

    The second "hey jarvis" starts 0.8 s after the first request ends: the
    endpoint has fired (700 ms of silence), and the first turn is transcribing
    or waiting for the LLM. Cue kinds: "turn" (ordinary), "first" (abandoned),
    "barge" (the request said while the first was thinking).
    """
    layout = Layout()
    layout.silence(1.0)
    for _ in range(pairs):
        cue = layout.request(phrases, "turn")
        layout.pad_to(cue.speech_end + seconds(reply_delay_s + reply_s + 1.5))
        first = layout.request(phrases, "first")
        layout.pad_to(first.speech_end + seconds(0.8))
        barge = layout.request(phrases, "barge", gap_s=0.3)
        layout.pad_to(barge.speech_end + seconds(reply_delay_s + reply_s + 1.5))
    return layout


def idle_layout(idle_s: float) -> Layout:
    layout = Layout()
    layout.silence(idle_s + 2.0)  # noise is mixed in by `write`
    return layout


def soak_layout(phrases: Phrases, minutes: float, reply_s: float, reply_delay_s: float) -> Layout:
    """Cycles of idle noise, a turn, and speech without the wake word."""
    layout = Layout()
    target = seconds(minutes * 60)
    cycles = 0
    while cycles == 0 or layout.length < target:
        layout.silence(3.0)
        cue = layout.request(phrases, "turn")
        layout.pad_to(cue.speech_end + seconds(reply_delay_s + reply_s + 1.0))
        layout.add(phrases.other)
        layout.silence(2.0)
        cycles += 1
    return layout


def vad_model_tail_ms(vad: Any, speech: Audio, threshold: float, window: int = 512) -> float:
    """How far past the last voiced sample the VAD still says speech, at its own window resolution."""
    audio = np.concatenate([np.zeros(seconds(0.3), np.float32), speech, np.zeros(seconds(1.0), np.float32)])
    end = seconds(0.3) + len(speech)
    vad.reset()
    last = 0
    for start in range(0, len(audio) - window + 1, window):
        if vad.process(audio[start : start + window]) >= threshold:
            last = start + window
    vad.reset()
    return 1000.0 * (last - end) / SAMPLE_RATE


def padded(audio: Audio, seconds_: float) -> Audio:
    """Exactly `seconds_` of audio: cut or padded with silence."""
    n = math.floor(seconds_ * SAMPLE_RATE)
    out = np.zeros(n, np.float32)
    out[: min(n, len(audio))] = audio[:n]
    return out
