"""The fair scheduler: round-robin order, the priority client, the pending bound; and its one worker thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from assistant.core.errors import SpeechToTextCancelled
from assistant.core.fairness import LOCAL, FairExecutor, RoundRobin, TooManyPending
from assistant.core.work import run_abortable, start_abortable

WAIT_S = 10.0
"""A guard against a hung test, never a measurement."""


def drain(order: RoundRobin[str]) -> list[str]:
    served = []
    while (picked := order.pop()) is not None:
        client, job = picked
        order.finished(client)
        served.append(job)
    return served


@pytest.mark.parametrize(
    ("pushes", "expected"),
    [
        # One client alone: its own order.
        ([("a", "a1"), ("a", "a2"), ("a", "a3")], ["a1", "a2", "a3"]),
        # A flooding client and one job from another: the other's goes second, not last.
        ([("a", "a1"), ("a", "a2"), ("a", "a3"), ("a", "a4"), ("b", "b1")], ["a1", "b1", "a2", "a3", "a4"]),
        # Three clients take turns in the order they first asked.
        (
            [("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2"), ("c", "c1")],
            ["a1", "b1", "c1", "a2", "b2"],
        ),
        # The microphone goes first whenever it has work, whoever asked earlier.
        ([("a", "a1"), ("b", "b1"), (LOCAL, "m1"), (LOCAL, "m2")], ["m1", "m2", "a1", "b1"]),
    ],
)
def test_round_robin_order(pushes: list[tuple[str, str]], expected: list[str]) -> None:
    order: RoundRobin[str] = RoundRobin(priority=LOCAL)
    for client, job in pushes:
        order.push(client, job)
    assert drain(order) == expected
    assert order.queued() == 0 and order.pending("a") == 0


def test_a_newcomer_goes_before_a_client_that_was_just_served() -> None:
    order: RoundRobin[str] = RoundRobin(priority=LOCAL)
    for job in ("a1", "a2", "a3"):
        order.push("a", job)
    client, job = order.pop() or ("", "")
    assert job == "a1"  # running; a2 and a3 wait
    order.push("b", "b1")  # another session speaks while the flood waits: it is next, not third
    order.push("c", "c1")
    order.finished(client)
    assert drain(order) == ["b1", "c1", "a2", "a3"]


def test_a_client_served_longest_ago_goes_first_until_forgotten() -> None:
    order: RoundRobin[str] = RoundRobin()
    for client in ("a", "b", "a"):
        order.push(client, f"{client}-early")
    assert drain(order) == ["a-early", "b-early", "a-early"]  # a was served last, b before it
    order.push("a", "a1")
    order.push("b", "b1")
    assert drain(order) == ["b1", "a1"]
    order.forget("b")  # b's session closed; a new one of that name is a newcomer again
    order.push("a", "a2")
    order.push("b", "b2")
    assert drain(order) == ["b2", "a2"]
    order.forget("a")
    order.push("a", "a3")
    order.push("b", "b3")
    assert drain(order) == ["a3", "b3"]  # a, forgotten, counts as never served


def test_the_pending_bound_counts_running_jobs_and_frees_on_finish() -> None:
    order: RoundRobin[str] = RoundRobin()
    order.push("a", "a1", limit=2)
    order.push("a", "a2", limit=2)
    with pytest.raises(TooManyPending) as refused:
        order.push("a", "a3", limit=2)
    assert (refused.value.client, refused.value.pending, refused.value.limit) == ("a", 2, 2)
    order.push("b", "b1", limit=2)  # the bound is per client
    client, _ = order.pop() or ("", "")
    assert client == "a" and order.pending("a") == 2  # running still counts
    with pytest.raises(TooManyPending):
        order.push("a", "a3", limit=2)
    order.finished("a")
    order.push("a", "a3", limit=2)
    assert drain(order) == ["b1", "a2", "a3"]


def test_removing_a_queued_job_gives_its_slot_back() -> None:
    order: RoundRobin[str] = RoundRobin()
    order.push("a", "a1", limit=1)
    assert order.remove("a", "a1") and not order.remove("a", "a1")
    assert order.pending("a") == 0 and order.pop() is None
    order.push("a", "a2", limit=1)
    order.push("b", "b1")
    assert order.remove("b", "b1")
    assert drain(order) == ["a2"]


def test_a_client_waiting_for_first_audio_goes_first_and_holds_the_others() -> None:
    order: RoundRobin[str] = RoundRobin(priority=LOCAL)
    for job in ("a1", "a2"):
        order.push("a", job)
    order.hurry("b", until=10.0)
    assert order.holding(9.9) and not order.holding(10.0)
    assert order.pop(1.0, hold=True) is None  # b asked for a reply and has nothing queued yet: a waits
    order.push("b", "b1")
    order.push(LOCAL, "m1")
    assert [order.pop(1.0, hold=True) for _ in range(2)] == [(LOCAL, "m1"), ("b", "b1")]  # the microphone, then b
    assert order.pop(1.0, hold=True) is None
    assert order.pop(1.0) == ("a", "a1")  # a pool without the hold only reorders
    assert order.pop(10.5, hold=True) == ("a", "a2")  # the hold has run out
    order.push("a", "a3")
    order.relax("b")
    assert order.pop(1.0, hold=True) == ("a", "a3")


def test_forgetting_a_hurried_client_ends_its_hold() -> None:
    order: RoundRobin[str] = RoundRobin()
    order.push("a", "a1")
    order.hurry("b", until=10.0)
    order.forget("b")
    assert order.pop(1.0, hold=True) == ("a", "a1")


# --- the worker thread ------------------------------------------------------------------


class Gate:
    """A job that blocks the worker until opened, so the queue behind it can be filled."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        assert self.release.wait(WAIT_S)
        return "gate"


@pytest.fixture
def pool() -> Iterator[FairExecutor]:
    executor = FairExecutor("test-fair")
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


def recorder(ran: list[str]) -> Callable[[str], str]:
    def job(name: str) -> str:
        ran.append(f"{name}@{threading.current_thread().name}")
        return name

    return job


def test_the_executor_runs_jobs_one_at_a_time_in_fair_order(pool: FairExecutor) -> None:
    gate = Gate()
    first = pool.lane("a").submit(gate)
    assert gate.started.wait(WAIT_S)
    ran: list[str] = []
    job = recorder(ran)
    a, b, mic = pool.lane("a", limit=3), pool.lane("b", limit=3), pool  # the pool itself is the microphone
    futures = [a.submit(job, "a1"), a.submit(job, "a2"), b.submit(job, "b1"), mic.submit(job, "m1")]
    with pytest.raises(TooManyPending):
        a.submit(job, "a3")  # the gate, a1 and a2 are pending for "a"
    gate.release.set()
    assert [f.result(WAIT_S) for f in futures] == ["a1", "a2", "b1", "m1"]
    assert first.result(WAIT_S) == "gate"
    assert [r.split("@")[0] for r in ran] == ["m1", "b1", "a1", "a2"]  # the gate was a's: b goes next
    assert {r.split("@")[1].split("_")[0] for r in ran} == {"test-fair"}
    assert pool.pending("a") == 0


def test_a_cancelled_job_never_runs_and_frees_its_slot(pool: FairExecutor) -> None:
    gate = Gate()
    pool.lane("b").submit(gate)
    assert gate.started.wait(WAIT_S)
    ran: list[str] = []
    lane = pool.lane("a", limit=1)
    queued = lane.submit(recorder(ran), "dropped")
    assert queued.cancel() and pool.pending("a") == 0
    kept = lane.submit(recorder(ran), "kept")
    gate.release.set()
    assert kept.result(WAIT_S) == "kept" and [r.split("@")[0] for r in ran] == ["kept"]


@pytest.mark.parametrize("fails", [False, True])
def test_whoever_a_result_wakes_finds_the_slot_free(pool: FairExecutor, fails: bool) -> None:
    # A realtime client told that its transcription is done may commit again at once: the done
    # callback (run as the future is settled) must already see the job as no longer pending.
    registered = threading.Event()

    def job() -> str:
        assert registered.wait(WAIT_S)  # the callback is added while the job runs, not after it ended
        if fails:
            raise ValueError("broken")
        return "done"

    lane = pool.lane("a", limit=1)
    seen: list[int] = []
    woken = threading.Event()
    future = lane.submit(job)
    future.add_done_callback(lambda _: (seen.append(pool.pending("a")), woken.set()))
    registered.set()
    assert woken.wait(WAIT_S)
    assert seen == [0]
    assert lane.submit(lambda: 42).result(WAIT_S) == 42


def test_an_exception_reaches_the_caller_and_the_worker_goes_on(pool: FairExecutor) -> None:
    def fail() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        pool.lane("a").submit(fail).result(WAIT_S)
    assert pool.lane("a").submit(lambda: 42).result(WAIT_S) == 42


def test_shutdown_cancels_what_has_not_started() -> None:
    pool = FairExecutor("test-shutdown")
    gate = Gate()
    running = pool.submit(gate)
    assert gate.started.wait(WAIT_S)
    waiting = pool.lane("a").submit(lambda: "never")
    gate.release.set()
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result(WAIT_S) == "gate"
    assert waiting.cancelled() or waiting.result(WAIT_S) == "never"
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


async def test_abortable_calls_through_a_lane(pool: FairExecutor) -> None:
    """`start_abortable` refuses at once past the bound; cancelling the awaiting task sets the cancel flag."""
    gate = Gate()
    pool.lane("b").submit(gate)
    assert await asyncio.to_thread(gate.started.wait, WAIT_S)
    seen: list[bool] = []

    def transcribe(text: str, *, cancel: threading.Event) -> str:
        seen.append(cancel.is_set())
        if cancel.is_set():
            raise SpeechToTextCancelled("abandoned")
        return text.upper()

    lane = pool.lane("a", limit=1)
    pending = start_abortable(lane, transcribe, "one")
    with pytest.raises(TooManyPending):
        start_abortable(lane, transcribe, "two")
    waiter = asyncio.ensure_future(pending)
    assert waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0)  # one loop turn: the future's done-callbacks carry the cancel to the queue
    assert pool.pending("a") == 0  # the queued call gave its place back
    gate.release.set()
    async with asyncio.timeout(WAIT_S):
        assert await run_abortable(lane, transcribe, "three") == "THREE"
    assert seen == [False]  # the cancelled call never started


def test_a_held_pool_starts_the_others_work_when_first_audio_comes() -> None:
    pool = FairExecutor("test-hold", hold=True)
    try:
        pool.hurry("b")
        ran: list[str] = []
        waiting = pool.lane("a").submit(recorder(ran), "a1")
        mine = pool.lane("b").submit(recorder(ran), "b1")
        assert mine.result(WAIT_S) == "b1"
        assert not waiting.done()  # held while b has not spoken
        pool.relax("b")
        assert waiting.result(WAIT_S) == "a1"
        assert [r.split("@")[0] for r in ran] == ["b1", "a1"]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_a_hold_runs_out_by_itself() -> None:
    pool = FairExecutor("test-hold-out", hold=True)
    try:
        pool.hurry("b", hold_s=0.05)  # never relaxed: a stalled reply
        assert pool.lane("a").submit(lambda: "a1").result(WAIT_S) == "a1"
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class Pass:
    """An abortable job like a transcription: it checks its flag between passes and stops when it is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.attempts = 0
        self.started = threading.Event()

    def __call__(self, *, cancel: threading.Event) -> str:
        self.attempts += 1
        self.started.set()
        if cancel.wait(WAIT_S if self.attempts == 1 else 0.0):  # the first attempt runs until told to stop
            raise SpeechToTextCancelled("abandoned")
        return f"{self.name} after {self.attempts} attempts"


@pytest.mark.parametrize("outrank", ["microphone", "hurried"])
def test_a_running_transcription_gives_way_and_runs_again(outrank: str) -> None:
    pool = FairExecutor("test-preempt", hold=True)
    try:
        batch = Pass("batch")
        first, _ = pool.lane("flood").submit_abortable(batch)
        assert batch.started.wait(WAIT_S)
        ran: list[str] = []
        if outrank == "microphone":
            urgent = pool.submit(recorder(ran), "m1")  # the microphone preempts any session's transcription
        else:
            urgent = pool.lane("b").submit(recorder(ran), "b1")
            pool.hurry("b")  # b now waits for first audio: the flood's transcription gives way
        assert urgent.result(WAIT_S) in {"m1", "b1"}
        if outrank == "hurried":
            pool.relax("b")
        assert first.result(WAIT_S) == "batch after 2 attempts"  # queued again at the front and finished
        assert pool.pending("flood") == 0
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_a_client_of_the_same_rank_does_not_preempt(pool: FairExecutor) -> None:
    batch = Pass("batch")
    first, stop_first = pool.lane("flood").submit_abortable(batch)
    assert batch.started.wait(WAIT_S)
    later = pool.lane("b").submit(lambda: "b1")
    _, abort = pool.lane("c").submit_abortable(Pass("c"))
    abort()  # an aborted job never preempts anyone either: it only stops itself
    assert not first.done() and not later.done() and batch.attempts == 1
    stop_first()
    with pytest.raises(SpeechToTextCancelled):
        first.result(WAIT_S)  # aborted by its caller: not run again
    assert later.result(WAIT_S) == "b1" and batch.attempts == 1


async def test_aborting_a_preemptible_call_stops_it(pool: FairExecutor) -> None:
    """start_abortable on a fair lane: cancelling the awaiting task sets the job's own flag."""
    batch = Pass("batch")
    waiter = asyncio.ensure_future(start_abortable(pool.lane("a"), batch))
    assert await asyncio.to_thread(batch.started.wait, WAIT_S)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await asyncio.to_thread(lambda: pool.lane("z").submit(lambda: "next").result(WAIT_S)) == "next"
    assert batch.attempts == 1
