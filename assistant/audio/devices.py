"""Real sound devices through pyaudio (PortAudio), resampled to 16 kHz with soxr.

Devices are chosen by a case-insensitive substring of their name, `None` for the default.  The
microphone reads on its own thread into a bounded drop-oldest queue of exact `BLOCK_SAMPLES` blocks;
the speaker writes blocks of at most `block_ms` from a worker thread, so `stop()` (barge-in) takes
effect within one block (plus what the device buffer already holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import numpy as np
import pyaudio  # type: ignore[import-untyped,unused-ignore]
import soxr

from assistant.audio.clock import SampleClock
from assistant.core.errors import AudioDeviceLost, FatalError
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE, Audio

logger = logging.getLogger(__name__)

COMMON_RATES = (16000, 22050, 24000, 44100, 48000)
Kind = Literal["input", "output"]
T = TypeVar("T")
_Item: TypeAlias = "Audio | BaseException | None"  # a microphone block, a failure, or the end


class AudioDeviceError(FatalError):
    """At start-up: a sound device is missing, busy or cannot do what was asked.

    A device that fails once running raises `AudioDeviceLost` instead (a
    `DeviceFault`): `assistant run` waits for it (assistant/audio/recovery.py).
    """

    code = "audio_device"


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device and which of `COMMON_RATES` it takes (mono float32)."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate: int
    input_rates: tuple[int, ...]
    output_rates: tuple[int, ...]

    def describe(self) -> str:
        return (
            f"{self.name!r} (in {self.max_input_channels} ch {list(self.input_rates)}, out "
            f"{self.max_output_channels} ch {list(self.output_rates)}, default {self.default_rate} Hz)"
        )


def _supported(pa: Any, index: int, kind: Kind, rate: int, channels: int = 1) -> bool:
    spec = {f"{kind}_device": index, f"{kind}_channels": channels, f"{kind}_format": pyaudio.paFloat32}
    try:
        return bool(pa.is_format_supported(rate, **spec))
    except ValueError:  # pyaudio's way of saying "no"
        return False


def _info(pa: Any, raw: dict[str, Any]) -> DeviceInfo:
    index, n_in, n_out = int(raw["index"]), int(raw["maxInputChannels"]), int(raw["maxOutputChannels"])
    return DeviceInfo(
        index=index,
        name=str(raw["name"]),
        max_input_channels=n_in,
        max_output_channels=n_out,
        default_rate=int(raw["defaultSampleRate"]),
        input_rates=tuple(r for r in COMMON_RATES if n_in and _supported(pa, index, "input", r)),
        output_rates=tuple(r for r in COMMON_RATES if n_out and _supported(pa, index, "output", r)),
    )


def open_portaudio() -> Any:
    """`pyaudio.PyAudio()` without the ALSA/JACK probing chatter on stderr."""
    if os.environ.get("ASSISTANT_AUDIO_DEBUG"):
        return pyaudio.PyAudio()
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            return pyaudio.PyAudio()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _with_pa(pa: Any | None, fn: Callable[[Any], T]) -> T:
    own = open_portaudio() if pa is None else None
    try:
        return fn(pa if own is None else own)
    finally:
        if own is not None:
            own.terminate()


def list_devices(pa: Any | None = None) -> list[DeviceInfo]:
    """Every device PortAudio sees, with the common rates each supports."""
    return _with_pa(pa, lambda p: [_info(p, p.get_device_info_by_index(i)) for i in range(p.get_device_count())])


def find_device(name: str | None, kind: Kind = "input", pa: Any | None = None) -> DeviceInfo:
    """The first `kind` device whose name contains `name` (any case); the default if None."""

    def find(p: Any) -> DeviceInfo:
        channels = "maxInputChannels" if kind == "input" else "maxOutputChannels"
        try:
            if name is None:
                return _info(p, getattr(p, f"get_default_{kind}_device_info")())
            return next(
                _info(p, raw)
                for raw in map(p.get_device_info_by_index, range(p.get_device_count()))
                if raw[channels] > 0 and name.lower() in str(raw["name"]).lower()
            )
        except (OSError, StopIteration):
            listing = "\n".join(f"  - {d.describe()}" for d in list_devices(p)) or "  (none: PortAudio sees no devices)"
            wanted = f"no default {kind} device" if name is None else f"no {kind} device matching {name!r}"
            raise AudioDeviceError(f"{wanted}; available devices:\n{listing}") from None

    return _with_pa(pa, find)


class _Device:
    """A stream on a named device: 16 kHz if supported, else the given or the default rate."""

    def __init__(
        self, kind: Kind, device: str | None, rate: int | None, block_s: float, clock: SampleClock | None
    ) -> None:
        self.clock = clock if clock is not None else SampleClock()
        self._pa = open_portaudio()
        try:
            dev = self.device = find_device(device, kind, self._pa)
            if rate is None:
                rate = SAMPLE_RATE if _supported(self._pa, dev.index, kind, SAMPLE_RATE) else dev.default_rate
            max_ch = dev.max_input_channels if kind == "input" else dev.max_output_channels
            self.channels = 1 if _supported(self._pa, dev.index, kind, rate, 1) else min(2, max_ch)
            self.rate, self.block_frames = rate, max(1, round(rate * block_s))
            self._stream = self._pa.open(
                rate=rate,
                channels=self.channels,
                format=pyaudio.paFloat32,
                start=False,
                frames_per_buffer=self.block_frames,
                **{kind: True, f"{kind}_device_index": dev.index},
            )
        except BaseException as exc:
            self._pa.terminate()
            if isinstance(exc, OSError):
                raise AudioDeviceError(f"cannot open {kind} {self.device.describe()} at {rate} Hz: {exc}") from exc
            raise


class DropOldestQueue(Generic[T]):
    """A bounded queue for the event loop that drops its oldest item when full."""

    def __init__(
        self, maxsize: int, warn_every: int = 50, name: str = "audio", clock: Callable[[], float] = time.monotonic
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize, self.warn_every, self.name, self.drops = maxsize, max(1, warn_every), name, 0
        self._warned_at: float | None = None
        self._clock = clock
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Add an item (event-loop thread only); drop the oldest when full, warn every N drops."""
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.drops += 1
            now = self._clock()
            # Warn on the first drop, then at most every warn_every drops and 10 s.
            if self._warned_at is None or ((self.drops - 1) % self.warn_every == 0 and now - self._warned_at >= 10.0):
                self._warned_at = now
                logger.warning("%s queue full: dropped the oldest block (%d so far)", self.name, self.drops)
        self._items.append(item)
        self._ready.set()

    async def get(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class PyAudioMicrophone(_Device):
    """A pyaudio input device delivering 16 kHz mono float32 blocks of `BLOCK_SAMPLES`."""

    def __init__(
        self,
        device: str | None = None,
        rate: int | None = None,
        clock: SampleClock | None = None,
        *,
        queue_blocks: int = 25,
    ) -> None:
        super().__init__("input", device, rate, BLOCK_SAMPLES / SAMPLE_RATE, clock)
        self.queue: DropOldestQueue[_Item] = DropOldestQueue(queue_blocks, name="microphone")
        self.exhausted = False  # a live device never runs out; a dead one raises AudioDeviceLost
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    async def blocks(self) -> AsyncIterator[Audio]:
        """Yield blocks as they arrive, advancing the clock by `BLOCK_SAMPLES` per block."""
        self.queue = blocks = DropOldestQueue[_Item](self.queue.maxsize, name="microphone")  # nothing stale
        self._stream.start_stream()
        self._running.set()
        self._thread = threading.Thread(
            target=self._read, args=(asyncio.get_running_loop(), blocks), name="microphone", daemon=True
        )
        self._thread.start()
        try:
            while (item := await blocks.get()) is not None:
                if isinstance(item, BaseException):
                    raise AudioDeviceLost(f"microphone {self.device.name!r} failed: {item}") from item
                self.clock.advance(BLOCK_SAMPLES)
                yield item
        finally:
            self._stop_reader()

    def _read(self, loop: asyncio.AbstractEventLoop, blocks: DropOldestQueue[_Item]) -> None:
        resampler = None if self.rate == SAMPLE_RATE else soxr.ResampleStream(self.rate, SAMPLE_RATE, 1)
        pending = np.zeros(0, np.float32)
        try:
            while self._running.is_set():
                raw = np.frombuffer(self._stream.read(self.block_frames, exception_on_overflow=False), np.float32)
                mono = raw.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
                # A misbehaving driver can hand back non-numbers; never let them reach the models.
                mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
                pending = np.concatenate((pending, mono if resampler is None else resampler.resample_chunk(mono)))
                while len(pending) >= BLOCK_SAMPLES:  # soxr's output sizes vary: re-block exactly
                    block, pending = pending[:BLOCK_SAMPLES].copy(), pending[BLOCK_SAMPLES:]
                    loop.call_soon_threadsafe(blocks.put, block)
            end: BaseException | None = None
        except Exception as exc:  # a dead device (or a closed event loop): handed to the consumer
            end = exc
        finally:
            with contextlib.suppress(OSError):  # a device that is gone cannot be stopped either
                self._stream.stop_stream()
        if not loop.is_closed():
            loop.call_soon_threadsafe(blocks.put, end)

    def _stop_reader(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def close(self) -> None:
        """Stop reading and release PortAudio."""
        self._stop_reader()
        with contextlib.suppress(OSError):
            self._stream.close()
        self._pa.terminate()


class PyAudioSpeaker(_Device):
    """A pyaudio output device fed 16 kHz audio; `on_block(n)` runs after each block written."""

    def __init__(
        self,
        device: str | None = None,
        rate: int | None = None,
        clock: SampleClock | None = None,
        block_ms: int = 40,
        on_block: Callable[[int], None] | None = None,
    ) -> None:
        if not 1 <= block_ms <= 50:
            raise ValueError(f"block_ms must be 1..50, got {block_ms}")
        super().__init__("output", device, rate, block_ms / 1000, clock)
        self._stream.start_stream()
        self.latency = float(self._stream.get_output_latency())
        self._buffer_frames = int(self._stream.get_write_available())  # nothing written yet: all free
        self.blocks_written, self._on_block = 0, on_block
        self.failure: Exception | None = None
        """Set by the writer when the device fails; nothing more is written after it."""
        self._generation = 0  # bumped by stop(); the writer drops blocks of older generations
        self._end_t = 0.0  # clock time at which everything queued will have sounded
        self._idle_at = time.monotonic()  # monotonic time at which the device buffer runs dry
        self._last: asyncio.Future[None] | None = None
        self._jobs: queue.Queue[tuple[list[bytes], int, asyncio.Future[None], asyncio.AbstractEventLoop] | None]
        self._jobs = queue.Queue()
        self._writer = threading.Thread(target=self._write, name="speaker", daemon=True)
        self._writer.start()

    async def play(self, audio: Audio) -> float:
        """Write `audio`; return once the device took it, with the clock time it starts to sound."""
        if self.failure is not None:
            raise AudioDeviceLost(f"speaker {self.device.name!r} failed: {self.failure}") from self.failure
        data = np.clip(np.asarray(audio, np.float32).reshape(-1), -1.0, 1.0)
        if self.rate != SAMPLE_RATE and len(data):
            data = soxr.resample(data, SAMPLE_RATE, self.rate).astype(np.float32)
        data, step = np.repeat(data, self.channels), self.block_frames * self.channels
        blocks = [data[i : i + step].tobytes() for i in range(0, len(data), step)]
        start = max(self.clock.now() + self.latency, self._end_t)
        self._end_t = start + len(audio) / SAMPLE_RATE
        loop = asyncio.get_running_loop()
        self._last = future = loop.create_future()
        self._jobs.put((blocks, self._generation, future, loop))
        await asyncio.shield(future)
        return start

    def queued_until(self) -> float:
        """Clock time at which everything handed over so far will have sounded."""
        return max(self.clock.now(), self._end_t)

    async def drain(self) -> float:
        """Wait until everything queued has played; return the clock time it ended."""
        if self._last is not None:
            await asyncio.shield(self._last)
        if (remaining := self._idle_at - time.monotonic()) > 0:
            await asyncio.sleep(remaining)
        return self.queued_until()

    def stop(self) -> float:
        """Drop everything not yet written; return the clock time the sound stops."""
        self._generation += 1
        now = self.clock.now()
        self._end_t = min(self._end_t, now + self.latency + self.block_frames / self.rate)
        return self.queued_until()

    def _write(self) -> None:
        for blocks, generation, future, loop in iter(self._jobs.get, None):
            try:
                for block in blocks:
                    if generation != self._generation or self.failure is not None:
                        break
                    self._stream.write(block)  # blocks while the device buffer is full
                    self.blocks_written += 1
                    queued = self._buffer_frames - int(self._stream.get_write_available())
                    self._idle_at = time.monotonic() + max(0, queued) / self.rate
                    if self._on_block is not None:
                        self._on_block(self.blocks_written)
            except Exception as exc:  # the device is gone: answer every job, write nothing more
                if self.failure is None:
                    logger.warning("speaker %r: write failed: %s", self.device.name, exc)
                self.failure = exc
            if not loop.is_closed():
                loop.call_soon_threadsafe(future.set_result, None)  # only ever set here

    def close(self) -> None:
        """Drop what is queued, stop the writer and release PortAudio."""
        self.stop()
        self._jobs.put(None)
        self._writer.join(timeout=2.0)
        with contextlib.suppress(OSError):
            self._stream.stop_stream()
        with contextlib.suppress(OSError):
            self._stream.close()
        self._pa.terminate()
