"""A clock that counts microphone samples, shared by the microphone and speaker.

Time is seconds of audio delivered by the microphone (samples / 16000), so
it stands still when the microphone does and never drifts from the audio the
core has seen.  `advance` may be called from any thread; `wait_until` is a
coroutine that wakes as soon as the clock reaches the requested time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading

from assistant.core.ports import SAMPLE_RATE

__all__ = ["SampleClock"]

_Waiter = tuple[float, int, "asyncio.Future[None]", asyncio.AbstractEventLoop]


class SampleClock:
    """Seconds of audio as counted in samples at `rate` (16 kHz by default)."""

    def __init__(self, rate: int = SAMPLE_RATE) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self._samples = 0
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._order = itertools.count()

    @property
    def samples(self) -> int:
        """Samples counted so far."""
        return self._samples

    def now(self) -> float:
        """The current time in seconds (samples / rate)."""
        return self._samples / self.rate

    def advance(self, n_samples: int) -> None:
        """Move the clock on by `n_samples` and wake every waiter now due."""
        if n_samples < 0:
            raise ValueError(f"cannot advance by a negative count: {n_samples}")
        due: list[_Waiter] = []
        with self._lock:
            self._samples += n_samples
            now = self._samples / self.rate
            while self._waiters and self._waiters[0][0] <= now:
                due.append(heapq.heappop(self._waiters))
        for _, _, future, loop in due:
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                _wake(future)
            else:
                loop.call_soon_threadsafe(_wake, future)

    async def wait_until(self, t: float) -> float:
        """Return once `now() >= t`; returns the time at wake-up."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._samples / self.rate >= t:
                return self.now()
            future: asyncio.Future[None] = loop.create_future()
            heapq.heappush(self._waiters, (t, next(self._order), future, loop))
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                self._waiters = [w for w in self._waiters if w[2] is not future]
                heapq.heapify(self._waiters)
            raise
        return self.now()

    def __repr__(self) -> str:
        return f"SampleClock(now={self.now():.3f}s, samples={self._samples})"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
