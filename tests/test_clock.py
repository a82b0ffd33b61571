"""SampleClock: seconds of microphone audio, and waiting for a time to come."""

from __future__ import annotations

import asyncio

import pytest

from assistant.audio.clock import SampleClock
from assistant.core.ports import SAMPLE_RATE


async def _let_loop_run() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_counts_samples_as_seconds() -> None:
    clock = SampleClock()
    assert clock.now() == 0.0
    clock.advance(1280)
    clock.advance(SAMPLE_RATE)
    assert clock.samples == 1280 + SAMPLE_RATE
    assert clock.now() == pytest.approx(1.08)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        SampleClock(0)


async def test_wait_until_returns_at_once_when_time_has_passed() -> None:
    clock = SampleClock()
    clock.advance(8000)
    assert await asyncio.wait_for(clock.wait_until(0.5), 1) == 0.5
    assert await asyncio.wait_for(clock.wait_until(-1.0), 1) == 0.5


async def test_wait_until_wakes_exactly_when_advanced_to_t() -> None:
    clock = SampleClock()
    waiter = asyncio.create_task(clock.wait_until(0.5))  # 8000 samples
    await _let_loop_run()
    clock.advance(7999)
    await _let_loop_run()
    assert not waiter.done()
    clock.advance(1)
    assert await asyncio.wait_for(waiter, 1) == 0.5


async def test_waiters_wake_in_time_order_and_only_when_due() -> None:
    clock = SampleClock()
    woke: list[float] = []

    async def wait(t: float) -> None:
        await clock.wait_until(t)
        woke.append(t)

    tasks = [asyncio.create_task(wait(t)) for t in (0.3, 0.1, 0.2, 5.0)]
    await _let_loop_run()
    clock.advance(int(0.25 * SAMPLE_RATE))
    await _let_loop_run()
    assert woke == [0.1, 0.2]
    clock.advance(int(0.05 * SAMPLE_RATE))
    await _let_loop_run()
    assert woke == [0.1, 0.2, 0.3]
    assert not tasks[3].done()
    tasks[3].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_advance_from_another_thread_wakes_the_waiter() -> None:
    clock = SampleClock()
    waiter = asyncio.create_task(clock.wait_until(1.0))
    await _let_loop_run()
    await asyncio.to_thread(clock.advance, SAMPLE_RATE)
    assert await asyncio.wait_for(waiter, 5) == 1.0


async def test_cancelled_waiter_is_forgotten() -> None:
    clock = SampleClock()
    waiter = asyncio.create_task(clock.wait_until(10.0))
    await _let_loop_run()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert clock._waiters == []
    clock.advance(20 * SAMPLE_RATE)  # nothing left to wake, nothing raises
