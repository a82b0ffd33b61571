"""Fake engines, a test-fed microphone and a gated speaker around the real `Assistant` loop.

Everything runs in one process on one event loop: the test hands the loop one
80 ms microphone block at a time (`Rig.tick`) and decides when each block of
the reply "plays" (`GatedSpeaker.step`), so a barge-in lands on an exact
sample of the reply.  Blocks carry their meaning in their level (`WAKE`,
`SPEECH`, `SILENCE`), which the fake wake detector and VAD read.  Nothing
waits on the wall clock except the timeouts that turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.audio.clock import SampleClock
from assistant.core.endpointing import EndpointSettings
from assistant.core.errors import SpeechToTextFailed
from assistant.core.history import History
from assistant.core.loop import Loop, LoopSettings
from assistant.core.ports import BLOCK_SAMPLES, SAMPLE_RATE, Audio, Health, LlmOptions, Message, WakeHit
from assistant.core.transcript import phrase_words
from assistant.core.turn import Turn, TurnSettings
from assistant.events import Event, EventBus, StateChanged

TIMEOUT_S = 10.0
BLOCK_S = BLOCK_SAMPLES / SAMPLE_RATE
WORD_BLOCKS = 2
"""The fake voice speaks every word in two blocks (160 ms)."""

SILENCE, SPEECH, WAKE = 0.0, 0.3, 0.9
"""Block levels: what the fake wake detector and VAD hear in a block."""


def block(level: float) -> Audio:
    return np.full(BLOCK_SAMPLES, level, np.float32)


class Signal:
    """Something changed (an event, a block taken, a block played): wake whoever waits on a condition."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()

    async def until(self, condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


class FedMicrophone:
    """The test hands over each block; the clock moves on as the loop takes it."""

    def __init__(self, clock: SampleClock, signal: Signal) -> None:
        self.clock, self.signal = clock, signal
        self.exhausted = False
        self.taken = 0
        self.asking = False
        self._queue: asyncio.Queue[Audio] = asyncio.Queue(maxsize=1)

    async def blocks(self) -> AsyncIterator[Audio]:
        while True:
            self.asking = True
            self.signal.notify()
            audio = await self._queue.get()
            self.asking = False
            self.taken += 1
            self.clock.advance(BLOCK_SAMPLES)
            yield audio

    async def feed(self, audio: Audio) -> None:
        """Give the loop one block and return once it has dealt with it (it asks for the next)."""
        await self.signal.until(lambda: self.asking, "the loop to ask for a block")
        taken = self.taken
        self._queue.put_nowait(audio)
        await self.signal.until(lambda: self.taken > taken and self.asking, "the loop to process a block")


class GatedSpeaker:
    """A speaker whose every block waits at a gate until the test lets it sound (`step`).

    A block let through sounds for 80 ms from then on the shared clock, so
    with one block per microphone block it plays in step with the room.
    """

    def __init__(self, clock: SampleClock, signal: Signal) -> None:
        self.clock, self.signal = clock, signal
        self.sounded: list[tuple[float, Audio]] = []
        """(clock time it started sounding, the block), for every block let through."""
        self.stops: list[float] = []
        self._until = 0.0
        self._pending = 0
        self._gate: asyncio.Future[None] | None = None

    @property
    def at_gate(self) -> bool:
        """A block waits to be played."""
        return self._gate is not None and not self._gate.done()

    def queued_until(self) -> float:
        return max(self._until, self.clock.now()) + self._pending / SAMPLE_RATE

    async def play(self, audio: Audio) -> float:
        assert self._gate is None, "one play at a time"
        start = self.queued_until()
        self._pending += len(audio)
        passed = 0
        try:
            for offset in range(0, len(audio), BLOCK_SAMPLES):
                piece = audio[offset : offset + BLOCK_SAMPLES]
                self._gate = asyncio.get_running_loop().create_future()
                self.signal.notify()
                await self._gate
                self._gate = None
                at = max(self._until, self.clock.now())
                self.sounded.append((at, piece))
                self._until = at + len(piece) / SAMPLE_RATE
                passed += len(piece)
                self._pending -= len(piece)
                self.signal.notify()
        finally:
            self._gate = None
            self._pending -= len(audio) - passed
            self.signal.notify()
        return start

    async def step(self) -> bool:
        """Let the block at the gate sound; False when none waits (the room hears silence)."""
        if not self.at_gate:
            return False
        gate = self._gate
        assert gate is not None
        played = len(self.sounded)
        gate.set_result(None)
        # It sounds, unless its play was cancelled (a barge-in) before it could: then the gate goes.
        await self.signal.until(lambda: len(self.sounded) > played or self._gate is not gate, "the block to sound")
        return len(self.sounded) > played

    async def drain(self) -> float:
        await self.clock.wait_until(self._until)
        return self.clock.now()

    def stop(self) -> float:
        now = self.clock.now()
        self._until = min(self._until, now)
        self.stops.append(now)
        self.signal.notify()
        return now

    def samples_since(self, t: float) -> int:
        """Samples that started sounding at or after clock time `t`."""
        return sum(len(piece) for at, piece in self.sounded if at >= t - 1e-9)


class LevelWake:
    """Fires on every `WAKE` block."""

    def __init__(self) -> None:
        self.blocks = 0

    def process(self, audio: Audio) -> WakeHit | None:
        self.blocks += 1
        return WakeHit("hey_jarvis", 0.97) if float(audio[0]) > (WAKE + SPEECH) / 2 else None


class LevelVad:
    """One window per block: voiced for `SPEECH` blocks (and wake blocks), silent otherwise."""

    window_s = BLOCK_S

    def windows(self, audio: Audio) -> list[float]:
        return [0.95 if float(audio[0]) > SPEECH / 2 else 0.02]

    def process(self, audio: Audio) -> float:
        return self.windows(audio)[0]

    def reset(self) -> None:
        pass


class ScriptedStt:
    """Answers each request with the next text (an Exception in the script is raised instead)."""

    def __init__(self, texts: Sequence[str | Exception]) -> None:
        self.texts = list(texts)
        self.heard: list[int] = []
        """Samples of each utterance it was given."""

    def transcribe(self, audio: Audio, *, cancel: threading.Event | None = None) -> str:
        self.heard.append(len(audio))
        text = self.texts.pop(0)
        if isinstance(text, Exception):
            raise text
        return text


@dataclass
class ScriptedLlm:
    """Streams each reply token by token; `hold` keeps a reply from starting until the test sets it."""

    replies: list[str]
    signal: Signal | None = None
    requests: list[list[Message]] = field(default_factory=list)
    hold: asyncio.Event | None = None
    fail_with: Exception | None = None
    """Raised once a reply's tokens are out (a stream cut after them)."""

    async def stream(self, messages: Sequence[Message], options: LlmOptions | None = None) -> AsyncIterator[str]:
        self.requests.append(list(messages))
        if self.signal is not None:
            self.signal.notify()
        if self.hold is not None:
            await self.hold.wait()
        reply = self.replies.pop(0)
        for index, word in enumerate(reply.split(" ") if reply else []):
            yield word if index == 0 else " " + word
            await asyncio.sleep(0)  # one token at a time, as a stream arrives
        if self.fail_with is not None:
            raise self.fail_with

    async def warm(self, messages: Sequence[Message], options: LlmOptions | None = None) -> None:
        return None

    async def health(self) -> list[Health]:
        return [Health("llm", True, "scripted")]

    async def aclose(self) -> None:
        return None


class WordTts:
    """`WORD_BLOCKS` blocks of a quiet tone per word, so the length of a chunk is known to the sample."""

    def __init__(self) -> None:
        self.spoken: list[str] = []

    def synthesize(self, text: str) -> Audio:
        self.spoken.append(text)
        return np.full(len(text.split()) * WORD_BLOCKS * BLOCK_SAMPLES, 0.1, np.float32)


ENDPOINT = EndpointSettings(threshold=0.5, silence_s=3 * BLOCK_S, min_speech_s=2 * BLOCK_S, no_speech_timeout_s=0.8)
"""Speech after two voiced blocks, its end after three silent ones; 0.8 s (10 blocks) with no speech gives up."""


@dataclass(frozen=True)
class FakeRing:
    id: int
    kind: str
    text: str
    late: bool = False


@dataclass(frozen=True)
class FakeAnswer:
    text: str
    action: str


class FakeSkills:
    """Rings when the test says (`ring_at`); answers "stop" alone; everything else goes to the LLM."""

    def __init__(self) -> None:
        self.ring_at: float | None = None
        self._ringing = False
        self.remembered: list[str] = []

    @property
    def ringing(self) -> bool:
        return self._ringing

    def handle(self, text: str, now: float) -> FakeAnswer | None:
        if text.strip(" .!").lower() == "stop":
            self._ringing = False
            return FakeAnswer("", "stop")
        return None

    def due(self, now: float) -> list[FakeRing]:
        if self.ring_at is not None and now >= self.ring_at:
            self.ring_at, self._ringing = None, True
            return [FakeRing(1, "timer", "Your timer is done.")]
        return []

    def remember(self, text: str) -> None:
        self.remembered.append(text)

    def stop_ringing(self) -> bool:
        was, self._ringing = self._ringing, False
        return was


class Rig:
    """The real `Assistant` and `Turn` on the fakes above; use as `async with Rig(...) as rig:`."""

    def __init__(
        self,
        *,
        stt: Sequence[str | Exception] = (),
        replies: Sequence[str] = (),
        follow_up_s: float = 0.0,
        not_heard: str = "Sorry, I didn't catch that.",
        apology: str = "Sorry, something went wrong.",
        skills: FakeSkills | None = None,
        new_request_pause_s: float = 0.3,
    ) -> None:
        self.signal = Signal()
        self.skills = skills
        self.clock = SampleClock()
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self._record)
        self.mic = FedMicrophone(self.clock, self.signal)
        self.speaker = GatedSpeaker(self.clock, self.signal)
        self.wake = LevelWake()
        self.stt = ScriptedStt(stt)
        self.llm = ScriptedLlm(list(replies), self.signal)
        self.tts = WordTts()
        self.history = History("Be brief.", max_turns=4, forget_after_s=0)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fake-compute")
        self._audio_pool = ThreadPoolExecutor(1, thread_name_prefix="fake-audio")
        self.turn = Turn(
            stt=self.stt,
            llm=self.llm,
            tts=self.tts,
            speaker=self.speaker,
            clock=self.clock,
            bus=self.bus,
            history=self.history,
            settings=TurnSettings(
                "fake-model",
                apology,
                not_heard=not_heard,
                first_chunk_min_chars=24,
                wake_phrases=[phrase_words("hey_jarvis")],
            ),
            executor=self._pool,
        )
        self.assistant = Loop(
            mic=self.mic,
            speaker=self.speaker,
            clock=self.clock,
            wake=self.wake,
            vad=LevelVad(),
            turn=self.turn,
            bus=self.bus,
            settings=LoopSettings(
                endpoint=ENDPOINT,
                preroll_s=2 * BLOCK_S,
                follow_up_s=follow_up_s,
                speculative_stt=False,
                new_request_pause_s=new_request_pause_s,
            ),
            audio_executor=self._audio_pool,
            skills=skills,
        )
        self._task: asyncio.Task[None] | None = None

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self.signal.notify()

    async def __aenter__(self) -> Rig:
        self._task = asyncio.create_task(self.assistant.run(), name="assistant")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._pool.shutdown(wait=True)
        self._audio_pool.shutdown(wait=True)

    # -- driving -------------------------------------------------------------
    async def tick(self, level: float = SILENCE) -> bool:
        """One block of room time: the speaker plays the block at its gate (if any), the microphone hears `level`."""
        played = await self.speaker.step()
        await self.mic.feed(block(level))
        return played

    async def ticks(self, n: int, level: float = SILENCE) -> None:
        for _ in range(n):
            await self.tick(level)

    async def say(self, blocks: int = 6) -> None:
        """A request: `blocks` of speech, then the silence that ends it."""
        await self.ticks(blocks, SPEECH)
        await self.ticks(round(ENDPOINT.silence_s / BLOCK_S), SILENCE)

    async def play(self, blocks: int) -> None:
        """Let exactly `blocks` of the reply sound, one per tick."""
        for _ in range(blocks):
            await self.signal.until(lambda: self.speaker.at_gate, "a reply block at the speaker")
            assert await self.tick()

    async def until_event(self, kind: type[Event], what: str = "", **fields: Any) -> Event:
        """The first event of `kind` (with these field values) published so far, or the next one."""

        def found() -> Event | None:
            for event in self.events:
                if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
                    return event
            return None

        await self.signal.until(lambda: found() is not None, what or f"a {kind.type} event {fields}")
        event = found()
        assert event is not None
        return event

    async def until_state(self, state: str) -> None:
        await self.signal.until(lambda: self.assistant.state == state, f"state {state}")

    # -- reading -------------------------------------------------------------
    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def states(self) -> list[str]:
        return [e.state for e in self.of(StateChanged)]


def stt_failure() -> SpeechToTextFailed:
    return SpeechToTextFailed("speech-to-text failed: the fake engine was told to fail")
