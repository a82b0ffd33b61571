"""`assistant check --audio`: the speaker → room → microphone loop, the noise floor and the wake word.

The analysis (`chirp`, `find_chirp`, `level_stats`) is pure numpy; `run_selftest`
drives any `Microphone`/`Speaker` pair on one clock: it records the room for a
moment, plays a short chirp and finds it in the recording with a matched filter
(heard or not, its level, the loop delay), then plays a stored wake-word sample
and runs the wake-word model over what the microphone heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio.clock import SampleClock
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE, Audio, Health, Microphone, Speaker

logger = logging.getLogger(__name__)

CHIRP_S = 0.3
CHIRP_HZ = (500.0, 4000.0)
CHIRP_LEVEL = 0.5
HEARD_MATCH = 0.5
"""Normalised correlation (0-1) with the chirp that counts as heard: noise alone stays near 0.1."""
QUIET_DBFS = -45.0
NOISY_DBFS = -35.0
CLIP_LEVEL = 0.99
CLIP_FRACTION = 0.001
SILENT_DBFS = -120.0
"""What exact digital zeros read as (a muted or unplugged capture path records them)."""
NOISE_S = 1.0
TAIL_S = 0.6
"""Recording kept after the speaker drains: the loop delay must fit in it."""

SPEAKER_FIX = (
    "check that the speaker is connected, unmuted and loud enough (alsamixer, or pactl set-sink-mute "
    "@DEFAULT_SINK@ 0 and pactl set-sink-volume @DEFAULT_SINK@ 80%), that the microphone can hear it, and "
    "that audio.output_device / audio.input_device name the right devices (`assistant devices`)"
)


def chirp(seconds: float = CHIRP_S, level: float = CHIRP_LEVEL) -> Audio:
    """A logarithmic sweep over `CHIRP_HZ` with 10 ms raised-cosine edges (no clicks)."""
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0, f1 = CHIRP_HZ
    k = np.log(f1 / f0)
    phase = 2 * np.pi * f0 * seconds / k * (np.exp(t / seconds * k) - 1)
    edge = round(0.01 * SAMPLE_RATE)
    envelope = np.ones(n)
    envelope[:edge] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
    envelope[n - edge :] = envelope[:edge][::-1]
    out: Audio = (level * np.sin(phase) * envelope).astype(np.float32)
    return out


def dbfs(audio: Audio) -> float:
    """RMS level in dB relative to full scale; exact zeros read `SILENT_DBFS`."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return max(SILENT_DBFS, 20 * np.log10(rms)) if rms > 0 else SILENT_DBFS


@dataclass(frozen=True)
class Levels:
    rms_dbfs: float
    peak_dbfs: float
    clipped: float
    """Fraction of samples at or over `CLIP_LEVEL`."""


def level_stats(audio: Audio) -> Levels:
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if len(audio) else 0.0
    return Levels(dbfs(audio), 20 * np.log10(peak) if peak > 0 else SILENT_DBFS, clipped)


def find_chirp(recording: Audio, reference: Audio) -> tuple[float, int]:
    """Best normalised correlation (0-1) of `reference` within `recording`, and the sample where it starts."""
    n = len(reference)
    if len(recording) < n:
        return 0.0, 0
    size = 1 << int(np.ceil(np.log2(len(recording) + n)))
    spectrum = np.fft.rfft(recording, size) * np.conj(np.fft.rfft(reference, size))
    corr = np.fft.irfft(spectrum, size)[: len(recording) - n + 1]
    energy = np.cumsum(np.concatenate(([0.0], np.square(recording, dtype=np.float64))))
    window = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-12))
    score = np.abs(corr) / (window * float(np.linalg.norm(reference)))
    best = int(np.argmax(score))
    return float(min(1.0, score[best])), best


def stored_wake_sample(model: str) -> Path | None:
    """The recording shipped for a bundled wake word (`assistant/audio/samples/NAME.wav`), if any."""
    resource = resources.files("assistant.audio").joinpath("samples", f"{model}.wav")
    return Path(str(resource)) if resource.is_file() else None


class _Recorder:
    """Keeps every microphone block with the clock time it started at."""

    def __init__(self, mic: Microphone, clock: SampleClock) -> None:
        self.mic, self.clock = mic, clock
        self.blocks: list[tuple[float, Audio]] = []
        self.started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _record(self) -> None:
        async for block in self.mic.blocks():
            self.blocks.append((self.clock.now() - len(block) / SAMPLE_RATE, block))
            self.started.set()

    async def __aenter__(self) -> _Recorder:
        self._task = asyncio.create_task(self._record(), name="selftest-record")
        await asyncio.wait_for(self.started.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def since(self, t: float) -> tuple[float, Audio]:
        """The audio from the first block at or after `t`, and that block's start time."""
        kept = [(start, block) for start, block in self.blocks if start >= t - 1e-6]  # float-safe
        if not kept:
            return t, np.zeros(0, np.float32)
        return kept[0][0], np.concatenate([block for _, block in kept])


async def _play(speaker: Speaker, clock: SampleClock, audio: Audio) -> float:
    """Play `audio`, wait until it has sounded plus `TAIL_S`; return the clock time it was handed over."""
    handed = clock.now()
    await asyncio.wait_for(speaker.play(audio), 10)
    ended = await asyncio.wait_for(speaker.drain(), 10)
    await asyncio.wait_for(clock.wait_until(ended + TAIL_S), 10)
    return handed


def loop_rows(noise: Levels, recorded: Audio, match: float, offset: int, delay_s: float) -> list[Health]:
    """The speaker → microphone, noise floor and clipping rows from the measurements."""
    rows = []
    heard = match >= HEARD_MATCH
    segment = recorded[offset : offset + round(CHIRP_S * SAMPLE_RATE)] if heard else recorded
    level = level_stats(segment)
    if not heard:
        fix = SPEAKER_FIX
        if noise.rms_dbfs <= SILENT_DBFS:
            fix = "the microphone recorded exact zeros (a muted or unplugged microphone, alsamixer: Capture); " + fix
        rows.append(Health("speaker → microphone", False, f"chirp not heard (best match {match:.2f})", fix))
    elif level.rms_dbfs < QUIET_DBFS:
        rows.append(
            Health(
                "speaker → microphone",
                False,
                f"chirp heard but faint: {level.rms_dbfs:.1f} dBFS, loop delay {delay_s * 1000:.0f} ms",
                "raise the speaker volume or the microphone gain (alsamixer), or move them closer",
            )
        )
    else:
        above = (
            "over digital silence"
            if noise.rms_dbfs <= SILENT_DBFS
            else (f"{level.rms_dbfs - noise.rms_dbfs:.0f} dB over the noise floor")
        )
        detail = f"chirp heard at {level.rms_dbfs:.1f} dBFS ({above}, match {match:.2f}), "
        rows.append(Health("speaker → microphone", True, detail + f"loop delay {delay_s * 1000:.0f} ms"))
    floor = "digital silence" if noise.rms_dbfs <= SILENT_DBFS else f"{noise.rms_dbfs:.1f} dBFS"
    if noise.rms_dbfs > NOISY_DBFS:
        rows.append(
            Health(
                "noise floor",
                False,
                f"{floor} (peak {noise.peak_dbfs:.1f} dBFS): a noisy room or gain",
                "move the device away from fans and speakers of other devices, or lower the microphone "
                "gain (alsamixer: Capture)",
            )
        )
    else:
        rows.append(Health("noise floor", True, f"{floor} (peak {noise.peak_dbfs:.1f} dBFS)"))
    clipped = max(noise.clipped, level.clipped if heard else 0.0)
    if clipped > CLIP_FRACTION:
        rows.append(
            Health(
                "clipping",
                False,
                f"{clipped:.2%} of samples at full scale",
                "lower the microphone gain (alsamixer: Capture) or the speaker volume",
            )
        )
    else:
        rows.append(Health("clipping", True, f"none ({clipped:.3%} of samples at full scale)"))
    return rows


def wake_row(model: str, score: float, threshold: float, sample: Path) -> Health:
    part = "wake word (sample)"
    detail = f"{model} scored {score:.2f} on {sample.name} played and recorded (threshold {threshold:.2f})"
    if score >= threshold:
        return Health(part, True, detail)
    return Health(
        part,
        False,
        detail,
        "if the chirp was not heard, fix the speaker first; else lower "
        "wake.threshold a little, or reduce the room's noise and echo",
    )


async def run_selftest(
    mic: Microphone,
    speaker: Speaker,
    clock: SampleClock,
    wake: Any,
    *,
    wake_sample: Audio | None,
    sample_path: Path | None,
    threshold: float,
) -> list[Health]:
    """Measure the loop and the wake word on real devices (or any pair on one clock)."""
    reference = chirp()
    async with _Recorder(mic, clock) as recorder:
        quiet_from = clock.now()
        await clock.wait_until(quiet_from + NOISE_S)
        noise = level_stats(recorder.since(quiet_from)[1])
        handed = await _play(speaker, clock, reference)
        start, recorded = recorder.since(handed)
        match, offset = find_chirp(recorded, reference)
        delay_s = start + offset / SAMPLE_RATE - handed
        rows = loop_rows(noise, recorded, match, offset, delay_s)
        logger.info("self-test: chirp match %.2f, delay %.0f ms", match, delay_s * 1000)
        if wake_sample is None or sample_path is None:
            rows.append(
                Health(
                    "wake word (sample)",
                    False,
                    f"no stored sample for {', '.join(wake.names)}",
                    "pass --wake-sample FILE.wav, a recording of the wake word",
                )
            )
            return rows
        wake.reset()
        played = await _play(speaker, clock, wake_sample)
        heard = recorder.since(played)[1]
    scores: dict[str, float] = {}
    for i in range(0, len(heard) - len(heard) % BLOCK_SAMPLES, BLOCK_SAMPLES):
        for name, value in wake.scores(heard[i : i + BLOCK_SAMPLES]).items():
            scores[name] = max(scores.get(name, 0.0), value)
    wake.reset()
    name, best = max(scores.items(), key=lambda item: item[1], default=(wake.names[0], 0.0))
    rows.append(wake_row(name, best, threshold, sample_path))
    return rows
