"""Sound devices the fault soak can unplug: its WAV input and a silent output, behind one `Plug`.

They fail the way the pyaudio devices do (assistant/audio/devices.py), so what runs is the real
recovery in `AudioLink` (assistant/audio/recovery.py): a running stream raises `AudioDeviceLost`
carrying PortAudio's ``[Errno -9999] Unanticipated host error``; opening while unplugged raises
`AudioDeviceError` naming the device, as `find_device` does; once plugged in again the next open
succeeds.  A handle opened before a pull stays dead after the device is back, as a USB device's does.

The microphone reads the input at the clock's position, so what is said while it is away is missed
(as it would be) and the input stays lined up with the clock and the script's cues.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from assistant.audio.clock import SampleClock
from assistant.audio.devices import AudioDeviceError
from assistant.core.errors import AudioDeviceLost
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE, Audio

logger = logging.getLogger(__name__)

HOST_ERROR = (-9999, "Unanticipated host error")  # what PortAudio's ALSA host says of an unplugged device


class Plug:
    """One USB sound device (microphone and speaker in one) that can be pulled out and put back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.present = True
        self.generation = 0  # bumped by each pull: handles opened before it are dead

    def pull(self) -> None:
        self.present = False
        self.generation += 1

    def insert(self) -> None:
        self.present = True

    def alive(self, generation: int) -> bool:
        return self.present and generation == self.generation

    def open(self, kind: str) -> int:
        """Open a handle (its generation), or fail as PortAudio does when the device is not there."""
        if not self.present:
            raise AudioDeviceError(
                f"no {kind} device matching {self.name!r}; available devices:\n  (none: PortAudio sees no devices)"
            )
        return self.generation


class Tape:
    """The soak's input audio, read at the clock's position by whichever microphone is open now."""

    def __init__(self, audio: Audio, *, fast: bool) -> None:
        self.audio = np.asarray(audio, np.float32)
        self.fast = fast
        self.busy: Callable[[], bool] = lambda: False
        """Set once the assistant exists: with `fast`, blocks come in real time only while it is busy."""

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class PluggedMicrophone:
    """The tape as a microphone on the plug: fails at the next block once the plug is pulled."""

    exhausted = False  # the link's stand-in never runs out; the soak says when the input is over

    def __init__(self, plug: Plug, tape: Tape, clock: SampleClock) -> None:
        self.plug, self.tape, self.clock = plug, tape, clock
        self.generation = plug.open("input")
        self.closed = False

    async def blocks(self) -> AsyncIterator[Audio]:
        block_s = BLOCK_SAMPLES / SAMPLE_RATE
        anchor_wall, sent = time.monotonic(), 0
        while True:
            if not self.plug.alive(self.generation):
                error = OSError(*HOST_ERROR)
                raise AudioDeviceLost(f"microphone {self.plug.name!r} failed: {error}") from error
            start = self.clock.samples
            chunk = self.tape.audio[start : start + BLOCK_SAMPLES]
            if len(chunk) < BLOCK_SAMPLES:
                chunk = np.concatenate([chunk, np.zeros(BLOCK_SAMPLES - len(chunk), np.float32)])
            sent += 1
            if not self.tape.fast or self.tape.busy():
                await asyncio.sleep(max(0.0, anchor_wall + sent * block_s - time.monotonic()))
            else:
                anchor_wall, sent = time.monotonic(), 0
                await asyncio.sleep(0)  # let the turn's tasks run between blocks
            self.clock.advance(BLOCK_SAMPLES)
            yield chunk.copy()

    def close(self) -> None:
        self.closed = True


class PluggedSpeaker:
    """A speaker on the plug that sounds nowhere but keeps a device's timing (as `WavSpeaker` does,
    without the file), one block ahead of the clock; a pull fails it mid-write, as PyAudioSpeaker's
    writer does: `failure` is set and nothing more is written."""

    def __init__(self, plug: Plug, clock: SampleClock, block_ms: int = 40) -> None:
        self.plug, self.clock = plug, clock
        self.generation = plug.open("output")
        self.block = max(1, SAMPLE_RATE * block_ms // 1000)
        self.failure: Exception | None = None
        self.samples_played = 0
        self.closed = False
        self._cursor = 0  # clock samples at which everything handed over will have sounded

    async def play(self, audio: Audio) -> float:
        if self.failure is not None:
            raise AudioDeviceLost(f"speaker {self.plug.name!r} failed: {self.failure}") from self.failure
        start = self._cursor = max(self._cursor, self.clock.samples)
        for offset in range(0, len(audio), self.block):
            if not self.plug.alive(self.generation):
                self.failure = OSError(*HOST_ERROR)
                logger.warning("speaker %r: write failed: %s", self.plug.name, self.failure)
                break
            await self.clock.wait_until((self._cursor - self.block) / SAMPLE_RATE)
            length = min(self.block, len(audio) - offset)
            self._cursor = max(self._cursor, self.clock.samples) + length
            self.samples_played += length
        return start / SAMPLE_RATE

    def queued_until(self) -> float:
        return max(self._cursor, self.clock.samples) / SAMPLE_RATE

    async def drain(self) -> float:
        await self.clock.wait_until(self._cursor / SAMPLE_RATE)
        return self.clock.now()

    def stop(self) -> float:
        self._cursor = min(self._cursor, self.clock.samples)
        return self.queued_until()

    def close(self) -> None:
        self.closed = True


def openers(plug: Plug, tape: Tape, block_ms: int = 40) -> Callable[[SampleClock], dict[str, Callable[[], Any]]]:
    """The `devices` argument of `assistant.app.build`: both devices on `plug`, on the runtime's clock."""

    def make(clock: SampleClock) -> dict[str, Callable[[], Any]]:
        return {
            "microphone": lambda: PluggedMicrophone(plug, tape, clock),
            "speaker": lambda: PluggedSpeaker(plug, clock, block_ms),
        }

    return make
