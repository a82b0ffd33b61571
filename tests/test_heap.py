"""Heap trimming once idle: glibc's malloc_trim really returns freed memory, and runs only on the way to idle."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from assistant.events import StateChanged, Wake
from assistant.heap import HeapTrimmer, load_trim


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


def test_malloc_trim_gives_freed_memory_back() -> None:
    trim = load_trim()
    assert trim is not None, "glibc has malloc_trim (Debian and Raspberry Pi OS use glibc)"
    trim()
    before = rss_mb()
    # Many small blocks (below mmap's threshold, so they live on the heap), all freed but one at the end.
    blocks = [bytearray(64 * 1024) for _ in range(3000)]
    keep = blocks[-1]
    del blocks
    grown = rss_mb()
    trim()
    assert grown - before > 100, (before, grown)  # the freed blocks still count as resident
    assert rss_mb() < grown - 100, (grown, rss_mb())
    assert len(keep) == 64 * 1024


def test_the_trimmer_runs_on_the_way_to_idle_only() -> None:
    calls: list[int] = []
    with ThreadPoolExecutor(1) as pool:
        trimmer = HeapTrimmer(pool, trim=lambda: calls.append(1))
        trimmer(Wake(t=0.0, model="hey_jarvis", score=0.9))
        trimmer(StateChanged(t=1.0, state="listening", previous="idle"))
        trimmer(StateChanged(t=5.0, state="idle", previous="speaking"))
    assert calls == [1] and trimmer.trims == 1
