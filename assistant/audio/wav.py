"""WAV files as the microphone and the speaker, on one clock.

`WavMicrophone` plays a file in as if it were a live microphone (paced in real
time, or as fast as the consumer pulls with `realtime=False`), then keeps
delivering silence so replies in flight can finish.  `WavSpeaker` lays what is
played onto the same timeline, so the output file lines up with the input:
silence where nothing plays, as a recording of the device would sound.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import soxr

from assistant.audio.clock import SampleClock
from assistant.core.errors import FatalError
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE, Audio


class AudioFileError(FatalError):
    code = "audio_file"


def read_wav(path: Path | str, rate: int = SAMPLE_RATE) -> Audio:
    """Read a PCM WAV of any rate, width and channel count as mono float32 at `rate`."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, source_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise AudioFileError(f"audio file {path} does not exist") from None
    except (wave.Error, EOFError) as exc:
        raise AudioFileError(f"{path} is not a PCM WAV file ({exc}); convert it with: sox IN -b 16 {path}") from None
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        bytes3 = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        ints = (
            bytes3[:, 0].astype(np.int32) | (bytes3[:, 1].astype(np.int32) << 8) | (bytes3[:, 2].astype(np.int32) << 16)
        )
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        samples = ints.astype(np.float32) / float(1 << 23)
    else:
        samples = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    mono = samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples
    if source_rate != rate and len(mono):
        mono = soxr.resample(mono, source_rate, rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def write_wav(path: Path | str, audio: Audio, rate: int = SAMPLE_RATE) -> None:
    """Write mono float32 audio as a 16-bit PCM WAV."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


class WavMicrophone:
    """A WAV file as the microphone; silence after it ends (`exhausted`).

    With `realtime=False` blocks come as fast as they are pulled while the
    assistant is idle or listening, and in real time while `busy()` says a
    turn is computing or playing: compute then costs the audio time it would
    cost on a device, so the output lines up as a recording would.
    """

    def __init__(self, path: Path | str, clock: SampleClock, *, realtime: bool = True) -> None:
        self.audio = read_wav(path)
        self.clock = clock
        self.realtime = realtime
        self.exhausted = False
        self.busy: Callable[[], bool] = lambda: False

    async def blocks(self) -> AsyncIterator[Audio]:
        silence = np.zeros(BLOCK_SAMPLES, np.float32)
        block_s = BLOCK_SAMPLES / SAMPLE_RATE
        anchor_wall, anchor_index = time.monotonic(), 0
        index = 0
        while True:
            chunk = self.audio[index * BLOCK_SAMPLES : (index + 1) * BLOCK_SAMPLES]
            if len(chunk) < BLOCK_SAMPLES:
                self.exhausted = True
                chunk = np.concatenate([chunk, silence[: BLOCK_SAMPLES - len(chunk)]])
            index += 1
            if self.realtime or self.busy():
                due = anchor_wall + (index - anchor_index) * block_s
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            else:
                anchor_wall, anchor_index = time.monotonic(), index
                await asyncio.sleep(0)  # let the turn's tasks run between blocks
            self.clock.advance(BLOCK_SAMPLES)
            yield chunk


class WavSpeaker:
    """Records what is played onto the microphone's timeline, in short blocks.

    Like a real device it takes at most `block_ms` ahead of what is sounding,
    so a barge-in `stop()` silences the output at once.
    """

    def __init__(self, path: Path | str, clock: SampleClock, *, rate: int = SAMPLE_RATE, block_ms: int = 40) -> None:
        self.path = Path(path)
        self.clock = clock
        self.rate = rate
        self.block = max(1, SAMPLE_RATE * block_ms // 1000)
        self._timeline = np.zeros(SAMPLE_RATE * 10, np.float32)
        self._cursor = 0
        self._last_written = 0

    def _now(self) -> int:
        return self.clock.samples

    def queued_until(self) -> float:
        return max(self._cursor, self._now()) / SAMPLE_RATE

    async def play(self, audio: Audio) -> float:
        start = max(self._cursor, self._now())
        self._cursor = start
        for offset in range(0, len(audio), self.block):
            block = audio[offset : offset + self.block]
            position = self._cursor
            # The device holds one block ahead of what sounds: wait for room.
            await self.clock.wait_until((position - self.block) / SAMPLE_RATE)
            position = max(position, self._now())
            self._write(position, block)
            self._cursor = position + len(block)
        return start / SAMPLE_RATE

    def _write(self, position: int, block: Audio) -> None:
        end = position + len(block)
        if end > len(self._timeline):
            grown = np.zeros(max(end, len(self._timeline) * 2), np.float32)
            grown[: len(self._timeline)] = self._timeline
            self._timeline = grown
        self._timeline[position:end] += block
        self._last_written = max(self._last_written, end)

    async def drain(self) -> float:
        await self.clock.wait_until(self._cursor / SAMPLE_RATE)
        return self.clock.now()

    def stop(self) -> float:
        now = self._now()
        if self._cursor > now:
            self._timeline[now : self._cursor] = 0.0
            self._last_written = min(self._last_written, max(now, 0))
        self._cursor = now
        return now / SAMPLE_RATE

    def close(self) -> None:
        """Write the file: the whole timeline up to now, at the output rate."""
        length = max(self._now(), self._last_written)
        audio = self._timeline[:length]
        if self.rate != SAMPLE_RATE and len(audio):
            audio = soxr.resample(audio, SAMPLE_RATE, self.rate, quality="HQ").astype(np.float32)
        write_wav(self.path, audio, self.rate)
