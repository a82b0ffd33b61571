"""Sound devices that come and go: `assistant run` keeps going while the microphone or speaker is away.

`AudioLink` owns the pyaudio devices and hands the core two stand-ins that never
fail: `LinkedMicrophone` yields the device's blocks, and silence at the real-time
pace while the device is away (so the loop, its timeouts and the watchdog go on);
`LinkedSpeaker` plays on the device, or keeps the timing with nobody hearing.
When a device fails (a PortAudio error, a USB device unplugged, the ALSA device
busy) the link publishes `Error` and `DeviceLost`, closes it, and looks for it
again by its configured name with a growing back-off; once it opens (same name,
maybe a new index) it publishes `DeviceRestored`.  The models stay loaded.

PortAudio enumerates devices once per initialisation, and it stays initialised
while any stream of the process is open: a retry that cannot find its device
closes the one that still works too (not while it plays), so that the next
enumeration sees what is plugged in now; that device misses a moment of audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from assistant.audio.clock import SampleClock
from assistant.core.errors import AssistantError
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE, Audio
from assistant.events import DeviceLost, DeviceRestored, Error, EventBus

logger = logging.getLogger(__name__)

BLOCK_S = BLOCK_SAMPLES / SAMPLE_RATE
KINDS = ("microphone", "speaker")


class Backoff:
    """Delays that double from `initial_s` up to `max_s`."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s, self.max_s = initial_s, max(initial_s, max_s)
        self.upcoming = initial_s

    def next(self) -> float:
        delay, self.upcoming = self.upcoming, min(self.max_s, self.upcoming * 2)
        return delay

    def reset(self) -> None:
        self.upcoming = self.initial_s


class AudioLink:
    """The devices of `assistant run`, reopened by name after a fault; `mic` and `speaker` are for the core."""

    def __init__(
        self,
        openers: dict[str, Callable[[], Any]],
        names: dict[str, str | None],
        clock: SampleClock,
        bus: EventBus,
        *,
        initial_s: float = 1.0,
        max_s: float = 30.0,
    ) -> None:
        self._openers, self.clock, self.bus = openers, clock, bus
        self.names = {kind: names.get(kind) or "default" for kind in openers}
        self.backoff = Backoff(initial_s, max_s)
        self._devices: dict[str, Any | None] = dict.fromkeys(openers)
        self._down_since: dict[str, float] = {}
        self._pending: list[tuple[str, str]] = []  # faults found before the loop ran
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.mic = LinkedMicrophone(self)
        self.speaker = LinkedSpeaker(self)

    def open(self) -> None:
        """Open every device; one that is not there yet is waited for like a lost one (reported by `start`)."""
        for kind, opener in self._openers.items():
            try:
                self._devices[kind] = opener()
            except AssistantError as exc:
                logger.error("%s %r not available at start: %s", kind, self.names[kind], exc)
                self._pending.append((kind, str(exc).splitlines()[0]))

    def start(self) -> None:
        """On the running loop, before the first block: report what `open` could not open and start looking."""
        pending, self._pending = self._pending, []
        for kind, message in pending:
            self._down(kind, message)

    def device(self, kind: str) -> Any | None:
        """The open device of `kind`, or None while it is away."""
        return self._devices.get(kind)

    @property
    def down(self) -> list[str]:
        return [kind for kind in self._openers if self._devices[kind] is None]

    def lost(self, kind: str, exc: BaseException) -> None:
        """A device failed: release it, say so and look for it again (once per fault)."""
        device = self._devices.get(kind)
        if device is None:
            return
        self._devices[kind] = None
        self._close_later(device)
        self._down(kind, str(exc))

    def _down(self, kind: str, message: str) -> None:
        self._down_since[kind] = time.monotonic()
        retry_in = self.backoff.upcoming if self._task is not None else self.backoff.initial_s
        logger.warning("%s %r lost: %s; looking for it again in %.1f s", kind, self.names[kind], message, retry_in)
        now = self.clock.now()
        self.bus.publish(Error(now, "audio_device_lost", f"{kind} {self.names[kind]!r}: {message}"))
        self.bus.publish(DeviceLost(now, kind, self.names[kind], message, retry_in))
        if self._task is None or self._task.done():
            self.backoff.reset()
            self._task = asyncio.create_task(self._recover(), name="audio-recover")

    def _close_later(self, device: Any) -> None:
        """Close on a thread: a stream's threads take up to a block (or a timeout) to stop."""
        task = asyncio.create_task(asyncio.to_thread(device.close), name="audio-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _recover(self) -> None:
        while self.down:
            await asyncio.sleep(self.backoff.next())  # the loop (and the watchdog) run meanwhile
            await asyncio.gather(*self._closing, return_exceptions=True)
            try:
                await self._retry()
            except Exception:  # a bug here must not end the looking: log it and try again later
                logger.exception("audio: reopening the devices failed")

    async def _retry(self) -> None:
        down = self.down
        live = [kind for kind in self._openers if kind not in down]
        speaker = self._devices.get("speaker")
        if speaker is not None and speaker.queued_until() > self.clock.now():
            live.remove("speaker")  # playing: no fresh enumeration this time
        opened = await asyncio.to_thread(self._reopen, down, live)
        for kind, result in opened.items():
            if isinstance(result, BaseException):
                if kind in live:  # closed for the enumeration and would not open again: lost too
                    self._devices[kind] = None
                    self._down(kind, str(result).splitlines()[0])
                else:
                    logger.info(
                        "%s %r still away: %s; next try in %.1f s",
                        kind,
                        self.names[kind],
                        str(result).splitlines()[0],
                        self.backoff.upcoming,
                    )
                continue
            self._devices[kind] = result
            if kind in down:
                down_s = time.monotonic() - self._down_since.pop(kind, time.monotonic())
                describe = getattr(getattr(result, "device", None), "describe", None)
                described = describe() if callable(describe) else ""
                logger.info("%s %r is back after %.1f s: %s", kind, self.names[kind], down_s, described)
                self.bus.publish(DeviceRestored(self.clock.now(), kind, self.names[kind], round(down_s, 3)))

    def _reopen(self, down: list[str], live: list[str]) -> dict[str, Any]:
        """On a worker thread: open the `down` devices; if some will not, close the `live` ones (PortAudio
        then enumerates afresh on the next open) and try all of them again."""
        results = {kind: self._try_open(kind) for kind in down}
        if not live or not any(isinstance(r, BaseException) for r in results.values()):
            return results
        for kind in live:
            device, self._devices[kind] = self._devices[kind], None  # the loop's stand-ins see it go at once
            if device is not None:
                with contextlib.suppress(Exception):
                    device.close()
        for kind in down:
            if isinstance(results[kind], BaseException):
                results[kind] = self._try_open(kind)
        for kind in live:
            results[kind] = self._try_open(kind)
        return results

    def _try_open(self, kind: str) -> Any:
        try:
            return self._openers[kind]()
        except Exception as exc:  # AudioDeviceError, or whatever a half-plugged device raises
            return exc

    async def aclose(self) -> None:
        """Stop looking and release every device."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*self._closing, return_exceptions=True)
        self.close()

    def close(self) -> None:
        """Stop looking and release every device (once the loop is done with them)."""
        if self._task is not None:
            self._task.cancel()
        for kind, device in self._devices.items():
            self._devices[kind] = None
            if device is not None:
                device.close()


class LinkedMicrophone:
    """The link's microphone: the device's blocks, or silence at the real-time pace while it is away."""

    exhausted = False  # it never runs out: a lost device comes back, or silence stands in

    def __init__(self, link: AudioLink) -> None:
        self.link = link

    async def blocks(self) -> AsyncIterator[Audio]:
        self.link.start()
        silence = np.zeros(BLOCK_SAMPLES, np.float32)
        paced_from, sent = 0.0, -1
        while True:
            mic = self.link.device("microphone")
            if mic is None:
                if sent < 0:
                    paced_from, sent = time.monotonic(), 0
                sent += 1
                await asyncio.sleep(max(0.0, paced_from + sent * BLOCK_S - time.monotonic()))
                self.link.clock.advance(BLOCK_SAMPLES)
                yield silence.copy()
                continue
            sent = -1
            stream = mic.blocks()
            try:
                async for block in stream:
                    yield block
                    if self.link.device("microphone") is not mic:
                        break
            except AssistantError as exc:  # AudioDeviceLost: the reader thread saw the device fail
                self.link.lost("microphone", exc)
            finally:
                await stream.aclose()


class LinkedSpeaker:
    """The link's speaker: plays on the device, or keeps the timing (nobody hears it) while it is away."""

    def __init__(self, link: AudioLink) -> None:
        self.link = link
        self._end_t = 0.0

    async def play(self, audio: Audio) -> float:
        self.link.start()  # a speaker missing at start is reported here when there is no microphone to do it
        speaker = self.link.device("speaker")
        if speaker is not None:
            try:
                start: float = await speaker.play(audio)
            except AssistantError as exc:
                self.link.lost("speaker", exc)
            else:
                if speaker.failure is not None:
                    self.link.lost("speaker", speaker.failure)
                self._end_t = speaker.queued_until()
                return start
        start = max(self.link.clock.now(), self._end_t)
        self._end_t = start + len(audio) / SAMPLE_RATE
        return start

    def queued_until(self) -> float:
        speaker = self.link.device("speaker")
        if speaker is not None:
            return float(speaker.queued_until())
        return max(self.link.clock.now(), self._end_t)

    async def drain(self) -> float:
        speaker = self.link.device("speaker")
        if speaker is not None:
            return float(await speaker.drain())
        await self.link.clock.wait_until(self._end_t)
        return self.queued_until()

    def stop(self) -> float:
        speaker = self.link.device("speaker")
        if speaker is not None:
            return float(speaker.stop())
        self._end_t = min(self._end_t, self.link.clock.now())
        return self.queued_until()
