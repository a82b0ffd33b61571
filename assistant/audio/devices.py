"""Real sound devices through pyaudio (PortAudio), resampled to 16 kHz with soxr.

Devices are chosen by a case-insensitive substring of their name (indices
change between boots and USB replugs); `None` means the system default.  The
microphone reads on its own thread and hands exact `BLOCK_SAMPLES` blocks to
asyncio through a bounded queue that drops the oldest block when the consumer
falls behind.  The speaker writes blocks of at most `block_ms` from a worker
thread, so `stop()` (barge-in) takes effect within one block.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import pyaudio  # type: ignore[import-untyped,unused-ignore]
import soxr

from assistant.audio.clock import SampleClock
from assistant.core.errors import FatalError
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE, Audio

log = logging.getLogger(__name__)

COMMON_RATES = (16000, 22050, 24000, 44100, 48000)
Kind = Literal["input", "output"]
T = TypeVar("T")


class AudioDeviceError(FatalError):
    """A sound device is missing, busy or cannot do what was asked."""

    code = "audio_device"


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device and the common rates it accepts (mono float32)."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate: int
    input_rates: tuple[int, ...]
    output_rates: tuple[int, ...]

    def describe(self) -> str:
        return (f"{self.name!r} (in {self.max_input_channels} ch {list(self.input_rates)}, "
                f"out {self.max_output_channels} ch {list(self.output_rates)}, "
                f"default {self.default_rate} Hz)")


def _supported(pa: Any, index: int, kind: Kind, rate: int, channels: int = 1) -> bool:
    try:
        if kind == "input":
            return bool(pa.is_format_supported(rate, input_device=index, input_channels=channels,
                                               input_format=pyaudio.paFloat32))
        return bool(pa.is_format_supported(rate, output_device=index, output_channels=channels,
                                           output_format=pyaudio.paFloat32))
    except ValueError:
        return False


def _info(pa: Any, raw: dict[str, Any]) -> DeviceInfo:
    index, n_in, n_out = int(raw["index"]), int(raw["maxInputChannels"]), int(raw["maxOutputChannels"])
    return DeviceInfo(
        index=index, name=str(raw["name"]), max_input_channels=n_in, max_output_channels=n_out,
        default_rate=int(raw["defaultSampleRate"]),
        input_rates=tuple(r for r in COMMON_RATES if n_in and _supported(pa, index, "input", r)),
        output_rates=tuple(r for r in COMMON_RATES if n_out and _supported(pa, index, "output", r)))


def _with_pa(pa: Any | None, fn: Callable[[Any], T]) -> T:
    if pa is not None:
        return fn(pa)
    own = pyaudio.PyAudio()
    try:
        return fn(own)
    finally:
        own.terminate()


def list_devices(pa: Any | None = None) -> list[DeviceInfo]:
    """Every device PortAudio sees, with the common rates each supports."""
    return _with_pa(pa, lambda p: [_info(p, p.get_device_info_by_index(i))
                                   for i in range(p.get_device_count())])


def find_device(name: str | None, kind: Kind = "input", pa: Any | None = None) -> DeviceInfo:
    """The first `kind` device whose name contains `name` (any case); the default if None."""
    def find(p: Any) -> DeviceInfo:
        if name is None:
            try:
                getter = p.get_default_input_device_info if kind == "input" else p.get_default_output_device_info
                return _info(p, getter())
            except OSError:
                pass
        else:
            for i in range(p.get_device_count()):
                raw = p.get_device_info_by_index(i)
                channels = raw["maxInputChannels"] if kind == "input" else raw["maxOutputChannels"]
                if channels > 0 and name.lower() in str(raw["name"]).lower():
                    return _info(p, raw)
        devices = [_info(p, p.get_device_info_by_index(i)) for i in range(p.get_device_count())]
        listing = "\n".join(f"  - {d.describe()}" for d in devices) or "  (none: PortAudio sees no devices)"
        wanted = f"no default {kind} device" if name is None else f"no {kind} device matching {name!r}"
        raise AudioDeviceError(f"{wanted}; available devices:\n{listing}")
    return _with_pa(pa, find)


def _open_params(pa: Any, dev: DeviceInfo, kind: Kind, rate: int | None) -> tuple[int, int]:
    """(rate, channels): 16 kHz when supported, else the configured or default rate."""
    if rate is None:
        rate = SAMPLE_RATE if _supported(pa, dev.index, kind, SAMPLE_RATE) else dev.default_rate
    max_ch = dev.max_input_channels if kind == "input" else dev.max_output_channels
    channels = 1 if _supported(pa, dev.index, kind, rate, 1) else min(2, max_ch)
    if not _supported(pa, dev.index, kind, rate, channels):
        raise AudioDeviceError(f"{kind} device {dev.describe()} cannot open at {rate} Hz, {channels} ch")
    return rate, channels


class DropOldestQueue(Generic[T]):
    """A bounded queue for the event loop that drops its oldest item when full."""

    def __init__(self, maxsize: int, warn_every: int = 50, name: str = "audio") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize, self.warn_every, self.name = maxsize, max(1, warn_every), name
        self.drops = 0
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Add an item (event-loop thread only); drop the oldest when full."""
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.drops += 1
            if (self.drops - 1) % self.warn_every == 0:
                log.warning("%s queue full: dropped the oldest block (%d dropped so far)",
                            self.name, self.drops)
        self._items.append(item)
        self._ready.set()

    async def get(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class PyAudioMicrophone:
    """A pyaudio input device delivering 16 kHz mono float32 blocks of `BLOCK_SAMPLES`."""

    def __init__(self, device: str | None = None, rate: int | None = None,
                 clock: SampleClock | None = None, *, queue_blocks: int = 25) -> None:
        self.clock = clock if clock is not None else SampleClock()
        self._pa = pyaudio.PyAudio()
        try:
            self.device = find_device(device, "input", self._pa)
            self.rate, self.channels = _open_params(self._pa, self.device, "input", rate)
        except BaseException:
            self._pa.terminate()
            raise
        self.queue: DropOldestQueue[Audio | BaseException | None] = DropOldestQueue(
            queue_blocks, name="microphone")
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    async def blocks(self) -> AsyncIterator[Audio]:
        """Yield blocks as they arrive; advances the clock by one block per block."""
        loop = asyncio.get_running_loop()
        frames = max(1, round(BLOCK_SAMPLES * self.rate / SAMPLE_RATE))
        try:
            stream = self._pa.open(rate=self.rate, channels=self.channels, format=pyaudio.paFloat32,
                                   input=True, input_device_index=self.device.index,
                                   frames_per_buffer=frames)
        except OSError as exc:
            raise AudioDeviceError(f"cannot open input {self.device.describe()}: {exc}") from exc
        self._running.set()
        self._thread = threading.Thread(target=self._read, args=(stream, frames, loop),
                                        name="microphone", daemon=True)
        self._thread.start()
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise AudioDeviceError(f"microphone {self.device.name!r} failed: {item}") from item
                self.clock.advance(BLOCK_SAMPLES)
                yield item
        finally:
            self._stop_reader()

    def _read(self, stream: Any, frames: int, loop: asyncio.AbstractEventLoop) -> None:
        resampler = None if self.rate == SAMPLE_RATE else soxr.ResampleStream(
            self.rate, SAMPLE_RATE, 1, dtype="float32")
        pending = np.zeros(0, np.float32)
        end: BaseException | None = None
        try:
            while self._running.is_set():
                raw = np.frombuffer(stream.read(frames, exception_on_overflow=False), np.float32)
                mono = raw.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono)
                pending = np.concatenate((pending, mono))
                while len(pending) >= BLOCK_SAMPLES:
                    block, pending = pending[:BLOCK_SAMPLES].copy(), pending[BLOCK_SAMPLES:]
                    loop.call_soon_threadsafe(self.queue.put, block)
        except RuntimeError:  # the event loop closed under us
            return
        except Exception as exc:  # handed to the consumer
            end = exc
        finally:
            stream.stop_stream()
            stream.close()
        if not loop.is_closed():
            loop.call_soon_threadsafe(self.queue.put, end)

    def _stop_reader(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def close(self) -> None:
        """Stop reading and release PortAudio."""
        self._stop_reader()
        self._pa.terminate()


_Job = tuple[list[bytes], int, "asyncio.Future[None]", asyncio.AbstractEventLoop]


class PyAudioSpeaker:
    """A pyaudio output device fed 16 kHz audio, written in blocks of at most `block_ms`."""

    def __init__(self, device: str | None = None, rate: int | None = None,
                 clock: SampleClock | None = None, block_ms: int = 40,
                 on_block: Callable[[int], None] | None = None) -> None:
        if not 1 <= block_ms <= 50:
            raise ValueError(f"block_ms must be 1..50, got {block_ms}")
        self.clock = clock if clock is not None else SampleClock()
        self._pa = pyaudio.PyAudio()
        try:
            self.device = find_device(device, "output", self._pa)
            self.rate, self.channels = _open_params(self._pa, self.device, "output", rate)
            self.block_frames = max(1, self.rate * block_ms // 1000)
            self._stream = self._pa.open(rate=self.rate, channels=self.channels,
                                         format=pyaudio.paFloat32, output=True,
                                         output_device_index=self.device.index,
                                         frames_per_buffer=self.block_frames)
        except OSError as exc:
            self._pa.terminate()
            raise AudioDeviceError(f"cannot open output {self.device.describe()}: {exc}") from exc
        self.latency = float(self._stream.get_output_latency())
        self._buffer_frames = int(self._stream.get_write_available())  # empty buffer: all free
        self.blocks_written = 0
        self._on_block = on_block
        self._generation = 0
        self._end_t = 0.0  # clock time at which everything queued will have sounded
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._last: asyncio.Future[None] | None = None
        self._idle_at = time.monotonic()  # when the device buffer will have played out
        self._writer = threading.Thread(target=self._write, name="speaker", daemon=True)
        self._writer.start()

    def _blocks(self, audio: Audio) -> list[bytes]:
        data = np.clip(np.asarray(audio, np.float32).reshape(-1), -1.0, 1.0)
        if self.rate != SAMPLE_RATE and len(data):
            data = soxr.resample(data, SAMPLE_RATE, self.rate).astype(np.float32)
        if self.channels > 1:
            data = np.repeat(data, self.channels)
        step = self.block_frames * self.channels
        return [data[i:i + step].tobytes() for i in range(0, len(data), step)]

    async def play(self, audio: Audio) -> float:
        """Write `audio`; return once the device took it, with the clock time it starts."""
        loop = asyncio.get_running_loop()
        start = max(self.clock.now() + self.latency, self._end_t)
        self._end_t = start + len(audio) / SAMPLE_RATE
        future: asyncio.Future[None] = loop.create_future()
        self._last = future
        self._jobs.put((self._blocks(audio), self._generation, future, loop))
        await asyncio.shield(future)
        return start

    async def drain(self) -> float:
        """Wait until everything queued has been written and has played out."""
        if self._last is not None:
            await asyncio.shield(self._last)
        remaining = self._idle_at - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
        return self.clock.now()

    def stop(self) -> float:
        """Drop everything not yet written; return the clock time the sound stops."""
        self._generation += 1
        now = self.clock.now()
        self._end_t = min(self._end_t, now + self.latency + self.block_frames / self.rate)
        return max(now, self._end_t)

    def _write(self) -> None:
        while (job := self._jobs.get()) is not None:
            blocks, generation, future, loop = job
            try:
                for block in blocks:
                    if generation != self._generation:
                        break
                    self._stream.write(block)
                    self.blocks_written += 1
                    self._idle_at = time.monotonic() + self._buffered_s()
                    if self._on_block is not None:
                        self._on_block(self.blocks_written)
            except Exception:  # keep serving; the device may come back
                log.exception("speaker %r: write failed", self.device.name)
            if not loop.is_closed():
                loop.call_soon_threadsafe(_done, future)

    def _buffered_s(self) -> float:
        try:
            free = int(self._stream.get_write_available())
        except OSError:
            return self.latency
        return max(0, self._buffer_frames - free) / self.rate

    def close(self) -> None:
        """Drop what is queued, stop the writer and release PortAudio."""
        self.stop()
        self._jobs.put(None)
        self._writer.join(timeout=2.0)
        self._stream.stop_stream()
        self._stream.close()
        self._pa.terminate()


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
