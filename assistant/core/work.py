"""Blocking engine calls on a worker thread that a cancelled task can abandon."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


async def run_abortable(executor: Executor, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args, cancel=event)` on `executor`.

    Cancelling the awaiting task sets the event, so a call still queued never
    starts and one in flight stops at its next check: a newer request's call
    does not wait behind an abandoned one on the same worker.
    """
    cancel = threading.Event()
    future = asyncio.get_running_loop().run_in_executor(executor, partial(fn, *args, cancel=cancel))
    try:
        return await future
    except asyncio.CancelledError:
        cancel.set()
        raise
