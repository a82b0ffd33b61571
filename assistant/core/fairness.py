"""Fair sharing of one worker thread between clients: per-client queues served in turn.

Whisper and Piper run on one worker thread each (they are not re-entrant, and
two at once would fight over the same cores).  Every realtime session and
the microphone loop queue their transcriptions and syntheses there.  A plain
FIFO lets one client that queues a lot hold everyone else up, so the worker
serves clients round-robin instead: one job from each client with work
waiting, in turn, and the priority client (the microphone: someone is
standing at the device) before anyone else.  A client may have a bounded
number of jobs pending; one more raises `TooManyPending`.

A client may also be *waiting for first audio* (`hurry`): someone asked it a
question and has heard nothing yet.  Its jobs go before everyone else's but
the priority client's, and while it waits a pool made with `hold=True` starts
no other client's job, so another session's batch of transcriptions does not
take the cores from the synthesis that would end the wait.  The hold lasts
until `relax`, or at most `HOLD_S`, so a stalled language model cannot keep
the others waiting.

A job submitted with `submit_abortable` (a transcription: whisper.cpp checks
a cancel flag between its passes) is *preempted* when a job that goes before
it arrives: the priority client's, or a hurried client's while a client that
is not hurried runs.  Its flag is set, and once it stops it goes back to the
front of its client's queue, to run again from the start in its turn.  So a
batch transcription delays a waiting session by at most the pass in flight,
not by the whole transcription.

`RoundRobin` is the pure order (no threads); `FairExecutor` runs its jobs one
at a time on one thread and is a `concurrent.futures.Executor`, so
`run_in_executor` and `core.work.run_abortable` work with it and with its
per-client views (`FairExecutor.lane`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from assistant.core.errors import AssistantError

logger = logging.getLogger(__name__)

J = TypeVar("J")
T = TypeVar("T")

LOCAL = "local"
"""The client name of work submitted straight to a `FairExecutor` (the microphone loop): the priority client."""

HOLD_S = 2.0
"""The longest a client waiting for first audio holds back other clients' jobs (seconds)."""


class TooManyPending(AssistantError):
    """A client already has as many jobs pending (queued or running) as it may."""

    code = "too_many_pending"

    def __init__(self, client: Hashable, pending: int, limit: int) -> None:
        super().__init__(f"{client} has {pending} jobs pending (at most {limit})")
        self.client = client
        self.pending = pending
        self.limit = limit


class RoundRobin(Generic[J]):
    """Per-client FIFO queues served in turn, the priority client first; a bounded pending count per client.

    The next job is the priority client's, else the first queued job of the
    client served longest ago (one never served, or not since `forget`,
    counts as longest ago; ties go to whoever queued first).  So every
    client with work waiting gets one job in before a client that was just
    served gets another, and a session that starts speaking while another
    floods the worker is next in line, not behind the flood.

    A job is pending from `push` until `finished` (after `pop` hands it out)
    or `remove` (taken back before it started).
    """

    def __init__(self, priority: Hashable | None = None) -> None:
        self.priority = priority
        self._queues: dict[Hashable, deque[J]] = {}
        self._pending: dict[Hashable, int] = {}
        self._served: dict[Hashable, int] = {}
        """When each client last had a job handed out, on a counter of hand-outs."""
        self._since: dict[Hashable, int] = {}
        """When each client's queue last became non-empty (breaks ties)."""
        self._count = 0
        self._hurried: dict[Hashable, float] = {}
        """Clients waiting for first audio, and when each one's hold on the others ends."""

    def pending(self, client: Hashable) -> int:
        """Jobs of `client` queued or running."""
        return self._pending.get(client, 0)

    def queued(self) -> int:
        """Jobs waiting to start, over every client."""
        return sum(len(queue) for queue in self._queues.values())

    def push(self, client: Hashable, job: J, limit: int | None = None) -> None:
        """Queue `job` for `client`; TooManyPending when it already has `limit` jobs pending."""
        pending = self.pending(client)
        if limit is not None and pending >= limit:
            raise TooManyPending(client, pending, limit)
        queue = self._queues.setdefault(client, deque())
        if not queue:
            self._count += 1
            self._since[client] = self._count
        queue.append(job)
        self._pending[client] = pending + 1

    def hurry(self, client: Hashable, until: float) -> None:
        """`client` waits for first audio: its jobs go first, and hold others back until `until`."""
        self._hurried[client] = until

    def relax(self, client: Hashable) -> None:
        """`client` has its first audio (or its response ended): back to its turn in the round."""
        self._hurried.pop(client, None)

    def rank(self, client: Hashable) -> int:
        """0 for the priority client, 1 for a hurried one, 2 for the rest."""
        return 0 if client == self.priority else 1 if client in self._hurried else 2

    def goes_before(self, running: Hashable) -> bool:
        """Whether a queued job's client ranks above `running`'s (so the running job should give way)."""
        return any(self.rank(client) < self.rank(running) for client in self._queues)

    def requeue(self, client: Hashable, job: J) -> None:
        """Put a job handed out by `pop` back at the front of its client's queue (it stays pending)."""
        queue = self._queues.setdefault(client, deque())
        if not queue:
            self._count += 1
            self._since[client] = self._count
        queue.appendleft(job)

    def holding(self, now: float) -> bool:
        """Whether a client waiting for first audio holds the others back at time `now`."""
        return any(until > now for until in self._hurried.values())

    def pop(self, now: float | None = None, *, hold: bool = False) -> tuple[Hashable, J] | None:
        """The next job to run and its client: the priority client's, a hurried one's, else served longest ago.

        With `hold`, while a hurried client's hold lasts (at `now`) no other
        client's job is handed out: None, though jobs are queued.
        """
        if not self._queues:
            return None
        hurried = [c for c in self._queues if c in self._hurried]
        if self.priority is not None and self.priority in self._queues:
            client = self.priority
        elif hurried or (hold and now is not None and self.holding(now)):
            if not hurried:
                return None
            client = min(hurried, key=lambda c: (self._served.get(c, 0), self._since[c]))
        else:
            client = min(self._queues, key=lambda c: (self._served.get(c, 0), self._since[c]))
        self._count += 1
        self._served[client] = self._count
        return client, self._take(client)

    def forget(self, client: Hashable) -> None:
        """Drop what is remembered about a client that has gone (its queued jobs stay queued)."""
        self._hurried.pop(client, None)
        if client not in self._queues:
            self._served.pop(client, None)
            self._since.pop(client, None)

    def finished(self, client: Hashable) -> None:
        """A job handed out by `pop` has ended: it no longer counts as pending."""
        left = self.pending(client) - 1
        if left > 0:
            self._pending[client] = left
        else:
            self._pending.pop(client, None)

    def remove(self, client: Hashable, job: J) -> bool:
        """Take back a queued job (cancelled before it started); False if it is not queued."""
        queue = self._queues.get(client)
        if not queue or job not in queue:
            return False
        queue.remove(job)
        if not queue:
            del self._queues[client]
        self.finished(client)
        return True

    def clear(self) -> list[J]:
        """Take back every queued job."""
        jobs = [job for queue in self._queues.values() for job in queue]
        for client, queue in list(self._queues.items()):
            for job in list(queue):
                self.remove(client, job)
        return jobs

    def _take(self, client: Hashable) -> J:
        queue = self._queues[client]
        job = queue.popleft()
        if not queue:
            del self._queues[client]
        return job


@dataclass(eq=False)
class _Job:
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    abortable: bool = False
    """Called with ``cancel=`` a flag it checks; it may then be preempted and run again."""
    stop: threading.Event | None = None
    """The flag of the attempt in progress (abortable jobs)."""
    aborted: bool = False
    """The caller gave up on it: every attempt starts with its flag set."""
    preempted: bool = False
    """The attempt in progress was asked to give way to a job that goes first."""
    started: bool = False

    def abort(self) -> None:
        """The caller has given up (its awaiting task was cancelled)."""
        self.aborted = True
        if self.stop is not None:
            self.stop.set()

    def preempt(self) -> None:
        self.preempted = True
        if self.stop is not None:
            self.stop.set()

    def attempt(self) -> Callable[[], None] | None:
        """Run the job once: the call that settles its future, or None when it was preempted and must run again.

        The caller settles the future only once the job no longer counts as
        pending, so whoever the result wakes may queue more work at once.
        """
        if not self.started:
            self.started = True
            if not self.future.set_running_or_notify_cancel():
                return lambda: None
        kwargs = {**self.kwargs, "cancel": self.stop} if self.abortable else self.kwargs
        try:
            result = self.fn(*self.args, **kwargs)
        except BaseException as exc:  # handed to whoever awaits the future, as ThreadPoolExecutor does
            if self.preempted and not self.aborted:
                return None
            return functools.partial(self.future.set_exception, exc)
        return functools.partial(self.future.set_result, result)


class FairExecutor(Executor):
    """One worker thread that serves its clients' jobs round-robin (`LOCAL`, the default client, first).

    With `hold`, a client waiting for first audio (`hurry`) holds back the
    other clients' jobs (see `RoundRobin.pop`); `clock` is the time source of
    the hold (seconds, monotonic).
    """

    def __init__(
        self,
        thread_name_prefix: str = "fair",
        *,
        priority: Hashable | None = LOCAL,
        hold: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=thread_name_prefix)
        self._name = thread_name_prefix
        self._lock = threading.Lock()
        self._order: RoundRobin[_Job] = RoundRobin(priority)
        self._busy = False
        self._closed = False
        self._hold = hold
        self._clock = clock
        self._running: tuple[Hashable, _Job] | None = None

    def lane(self, client: Hashable, limit: int | None = None) -> Lane:
        """An Executor that submits as `client`, with at most `limit` jobs pending (None: no bound)."""
        return Lane(self, client, limit)

    def pending(self, client: Hashable) -> int:
        """Jobs of `client` queued or running."""
        with self._lock:
            return self._order.pending(client)

    def forget(self, client: Hashable) -> None:
        """A client has gone: drop its place in the order (see `RoundRobin.forget`)."""
        with self._lock:
            self._order.forget(client)
        self._kick()

    def hurry(self, client: Hashable, hold_s: float = HOLD_S) -> None:
        """`client` waits for first audio: its jobs go first (and, with `hold`, alone) for up to `hold_s`."""
        with self._lock:
            self._order.hurry(client, self._clock() + hold_s)
            self._preempt_if_outranked()
        if self._hold:
            timer = threading.Timer(hold_s, self._kick)  # the hold ends by itself: start what it held back
            timer.daemon = True
            timer.start()

    def relax(self, client: Hashable) -> None:
        """`client` has its first audio or its response ended: held jobs may start."""
        with self._lock:
            self._order.relax(client)
        self._kick()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queue `fn(*args, **kwargs)` as the priority client."""
        return self.submit_as(LOCAL, None, fn, *args, **kwargs)

    def submit_abortable(self, fn: Callable[..., T], /, *args: Any) -> tuple[Future[T], Callable[[], None]]:
        """Queue `fn(*args, cancel=flag)` as the priority client; the future and the call that aborts it."""
        return self.submit_abortable_as(LOCAL, None, fn, *args)

    def submit_abortable_as(
        self, client: Hashable, limit: int | None, fn: Callable[..., T], /, *args: Any
    ) -> tuple[Future[T], Callable[[], None]]:
        """Queue `fn(*args, cancel=flag)` for `client`: it can be preempted (see the module docstring)."""
        job = self._queue(client, limit, _Job(Future(), fn, args, abortable=True))
        return job.future, job.abort

    def submit_as(
        self, client: Hashable, limit: int | None, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> Future[T]:
        """Queue a job for `client`; TooManyPending (raised here, at once) past `limit`."""
        future: Future[T] = self._queue(client, limit, _Job(Future(), fn, args, kwargs)).future
        return future

    def _queue(self, client: Hashable, limit: int | None, job: _Job) -> _Job:
        future = job.future
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._order.push(client, job, limit)
            self._preempt_if_outranked()
            start = not self._busy
            self._busy = True
        # A job cancelled while it waits gives its place (and its pending slot) back at once.
        future.add_done_callback(lambda done: self._withdraw(client, job) if done.cancelled() else None)
        if start:
            self._thread.submit(self._drain)
        return job

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; `cancel_futures` cancels what has not started."""
        with self._lock:
            self._closed = True
            dropped = self._order.clear() if cancel_futures else []
        for job in dropped:
            job.future.cancel()
        self._thread.shutdown(wait=wait)

    def _withdraw(self, client: Hashable, job: _Job) -> None:
        with self._lock:
            self._order.remove(client, job)

    def _preempt_if_outranked(self) -> None:
        """(Under the lock.) Ask the running job to give way if a queued job goes before it."""
        if self._running is None:
            return
        client, job = self._running
        if job.abortable and not job.preempted and self._order.goes_before(client):
            logger.debug("%s: preempting %s's job for one that goes first", self._name, client)
            job.preempt()

    def _kick(self) -> None:
        """Start the worker if jobs are queued and it is idle (after a hold ends)."""
        with self._lock:
            start = not self._busy and not self._closed and self._order.queued() > 0
            self._busy = self._busy or start
        if start:
            self._thread.submit(self._drain)

    def _drain(self) -> None:
        """The worker thread's loop: run jobs in the scheduler's order until none is left (or all are held)."""
        while True:
            with self._lock:
                picked = self._order.pop(self._clock(), hold=self._hold)
                if picked is None:
                    self._busy = False
                    return
                client, job = picked
                if job.abortable:
                    job.preempted = False
                    job.stop = threading.Event()
                    if job.aborted:
                        job.stop.set()
                self._running = picked
            settle = job.attempt()  # it never raises: the job's own exception goes to its future
            with self._lock:
                self._running = None
                if settle is None:
                    self._order.requeue(client, job)
                else:
                    self._order.finished(client)
            if settle is not None:
                settle()


class Lane(Executor):
    """One client's view of a `FairExecutor` (what a realtime session or the microphone loop submits to)."""

    def __init__(self, pool: FairExecutor, client: Hashable, limit: int | None) -> None:
        self.pool = pool
        self.client = client
        self.limit = limit

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queue a job for this client; TooManyPending past its limit."""
        return self.pool.submit_as(self.client, self.limit, fn, *args, **kwargs)

    def submit_abortable(self, fn: Callable[..., T], /, *args: Any) -> tuple[Future[T], Callable[[], None]]:
        """Queue `fn(*args, cancel=flag)` for this client (preemptible); the future and its abort call."""
        return self.pool.submit_abortable_as(self.client, self.limit, fn, *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """A lane owns no thread: shutting the pool down is its owner's job."""
