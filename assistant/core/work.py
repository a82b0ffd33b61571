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
    return await start_abortable(executor, fn, *args)


def start_abortable(executor: Executor, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Queue `fn(*args, cancel=event)` on `executor` now; a future of the result.

    The submission happens before this returns, so an executor that refuses
    work (`core.fairness.TooManyPending`) raises here, before the caller has
    changed anything.  Cancelling the future (or the task awaiting it) sets
    the event, as with `run_abortable`.
    """
    submit = getattr(executor, "submit_abortable", None)
    if submit is not None:  # a fair executor owns the flag (it may also preempt the call, and rerun it)
        inner, abort = submit(fn, *args)
    else:
        cancel = threading.Event()
        inner, abort = executor.submit(partial(fn, *args, cancel=cancel)), cancel.set
    future = asyncio.wrap_future(inner)
    future.add_done_callback(lambda done: abort() if done.cancelled() else None)
    return future
