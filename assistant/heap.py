"""Give the memory freed during a turn back to the system once the device is idle again.

glibc keeps freed heap pages for reuse; after turns of different lengths (Piper's buffers follow
the sentence) the process's resident size creeps up although nothing leaks.  `malloc_trim(0)`
returns those pages.  Measured with the real voice: sentences of one to four clauses took the
process from 206 to 268 MB untrimmed; after each trim it was back at 167 MB.  Elsewhere than
glibc (musl, macOS) there is no such call and this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from assistant.events import Event, StateChanged

logger = logging.getLogger(__name__)


def load_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


class HeapTrimmer:
    """Bus subscriber: trims the heap on `executor` each time the assistant goes back to idle."""

    def __init__(self, executor: Executor, trim: Callable[[], object] | None = None) -> None:
        self.executor = executor
        self.trim = trim if trim is not None else load_trim()
        self.trims = 0

    def __call__(self, event: Event) -> None:
        if self.trim is None or not isinstance(event, StateChanged) or event.state != "idle":
            return
        with contextlib.suppress(RuntimeError):  # the executor is shutting down
            self.executor.submit(self._run)

    def _run(self) -> None:
        assert self.trim is not None
        self.trim()
        self.trims += 1
