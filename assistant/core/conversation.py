"""One turn: transcribe → stream the LLM → speak sentence by sentence.

The whole turn is one task; cancelling it (barge-in) stops the LLM stream,
the synthesis and the speaker together, and what the user actually heard is
what the history keeps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

from assistant.core.errors import NothingHeard, SpeechToTextFailed, TurnError
from assistant.core.history import History
from assistant.core.ports import (
    SAMPLE_RATE,
    Audio,
    Clock,
    LanguageModel,
    Speaker,
    SpeechToText,
    TextToSpeech,
)
from assistant.core.sentences import SentenceSplitter
from assistant.core.transcript import only_fillers, strip_wake_phrase
from assistant.core.work import run_abortable
from assistant.events import (
    AudioStarted,
    AudioStopped,
    Error,
    EventBus,
    LlmDone,
    LlmFirstToken,
    LlmRequest,
    Sentence,
    Transcript,
    TurnLatency,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Spoken:
    """A chunk handed to the speaker and when it sounds on the clock."""

    text: str
    start: float
    end: float
    apology: bool = False


@dataclass
class TurnRecord:
    """What happened in one turn, filled in as it goes."""

    speech_end: float
    endpoint_at: float
    transcript: str = ""
    reply: str = ""
    spoken: list[Spoken] = field(default_factory=list)
    stt_ms: float | None = None
    llm_first_token_ms: float | None = None
    first_sentence_ms: float | None = None
    tts_ms: float | None = None
    first_audio_at: float | None = None
    failed: bool = False

    def heard(self, until: float | None) -> str:
        """The reply text the user heard by clock time `until` (None: all)."""
        words: list[str] = []
        for chunk in self.spoken:
            if chunk.apology:
                continue
            if until is None or chunk.end <= until:
                words.append(chunk.text)
            elif chunk.start < until:
                share = (until - chunk.start) / max(chunk.end - chunk.start, 1e-6)
                parts = chunk.text.split()
                kept = parts[: int(len(parts) * share)]
                if kept:
                    words.append(" ".join(kept) + "…")
        return " ".join(words)


@dataclass(frozen=True)
class TurnSettings:
    llm_model: str
    apology: str
    not_heard: str = "Sorry, I didn't catch that."
    first_chunk_min_chars: int = 24
    wake_phrases: list[list[str]] = field(default_factory=list)


class Turn:
    """Runs one request through STT, the LLM, TTS and the speaker."""

    def __init__(
        self,
        *,
        stt: SpeechToText,
        llm: LanguageModel,
        tts: TextToSpeech,
        speaker: Speaker,
        clock: Clock,
        bus: EventBus,
        history: History,
        settings: TurnSettings,
        executor: Executor,
        perf: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.stt, self.llm, self.tts = stt, llm, tts
        self.speaker, self.clock, self.bus = speaker, clock, bus
        self.history, self.settings = history, settings
        self.executor = executor
        self.on_reply_started: Callable[[], None] = lambda: None
        self.perf = perf

    async def _blocking(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def transcribe(self, audio: Audio, record: TurnRecord, text: str | None) -> str:
        """Speech-to-text (unless a speculative transcript of this audio is given), wake word removed.

        Raises `TurnError`: `stt_failed` when Whisper fails or runs away,
        `nothing_heard` when the request held no words.
        """
        started = self.perf()
        try:
            if text is None:
                try:
                    text = await run_abortable(self.executor, self.stt.transcribe, audio)
                except TurnError:
                    raise
                except Exception as exc:  # an engine failure is a failed turn, not a crash
                    raise SpeechToTextFailed(f"speech-to-text failed: {exc}") from exc
        finally:
            record.stt_ms = (self.perf() - started) * 1000
        record.transcript = strip_wake_phrase(text.strip(), self.settings.wake_phrases)
        if not record.transcript or only_fillers(record.transcript):
            raise NothingHeard(f"no words in the request (Whisper wrote {text.strip()!r})")
        self.bus.publish(Transcript(self.clock.now(), record.transcript))
        return record.transcript

    async def fail(self, record: TurnRecord, error: TurnError) -> None:
        """The one place a failed stage becomes an outcome: an error event and a spoken answer."""
        record.failed = True
        log.warning("turn failed (%s): %s", error.code, error)
        self.bus.publish(Error(self.clock.now(), error.code, str(error)))
        heard_nothing = isinstance(error, NothingHeard | SpeechToTextFailed)
        text = self.settings.not_heard if heard_nothing else self.settings.apology
        if not text:
            return
        queue: asyncio.Queue[Spoken | Audio | None] = asyncio.Queue()
        await self._synthesize(record, text, queue, apology=True)
        await queue.put(None)
        await self._play(record, queue)

    async def respond(self, record: TurnRecord) -> None:
        """Stream the reply to the speaker; speak an apology if the turn fails."""
        queue: asyncio.Queue[Spoken | Audio | None] = asyncio.Queue(maxsize=4)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._produce(record, queue), name="turn-produce")
            group.create_task(self._play(record, queue), name="turn-play")

    async def _produce(self, record: TurnRecord, queue: asyncio.Queue[Spoken | Audio | None]) -> None:
        now = self.clock.now()
        messages = self.history.messages(record.transcript, now)
        self.bus.publish(LlmRequest(now, self.settings.llm_model, len(messages)))
        splitter = SentenceSplitter(self.settings.first_chunk_min_chars)
        requested = self.perf()
        try:
            async for token in self.llm.stream(messages):
                if record.llm_first_token_ms is None:
                    record.llm_first_token_ms = (self.perf() - requested) * 1000
                    self.bus.publish(LlmFirstToken(self.clock.now()))
                record.reply += token
                for chunk in splitter.push(token):
                    if record.first_sentence_ms is None:
                        record.first_sentence_ms = (self.perf() - requested) * 1000
                    await self._synthesize(record, chunk, queue)
            self.bus.publish(LlmDone(self.clock.now(), record.reply))
            for chunk in splitter.flush():
                if record.first_sentence_ms is None:
                    record.first_sentence_ms = (self.perf() - requested) * 1000
                await self._synthesize(record, chunk, queue)
        except TurnError as exc:
            record.failed = True
            log.warning("turn failed (%s): %s", exc.code, exc)
            self.bus.publish(Error(self.clock.now(), exc.code, str(exc)))
            for chunk in splitter.flush():
                await self._synthesize(record, chunk, queue)
            await self._synthesize(record, self.settings.apology, queue, apology=True)
        await queue.put(None)

    async def _synthesize(
        self,
        record: TurnRecord,
        text: str,
        queue: asyncio.Queue[Spoken | Audio | None],
        *,
        apology: bool = False,
    ) -> None:
        self.bus.publish(Sentence(self.clock.now(), text))
        started = self.perf()
        try:
            audio = await self._blocking(self.tts.synthesize, text)
        except Exception as exc:  # a voice that fails on one chunk skips that chunk
            log.error("text-to-speech failed on %r: %s", text, exc)
            self.bus.publish(Error(self.clock.now(), "tts_failed", str(exc)))
            return
        if record.tts_ms is None:
            record.tts_ms = (self.perf() - started) * 1000
        await queue.put(Spoken(text, 0.0, 0.0, apology))
        await queue.put(audio)

    async def _play(self, record: TurnRecord, queue: asyncio.Queue[Spoken | Audio | None]) -> None:
        pending: Spoken | None = None
        while (item := await queue.get()) is not None:
            if isinstance(item, Spoken):
                pending = item
                continue
            assert pending is not None
            start = max(self.speaker.queued_until(), self.clock.now())
            pending.start, pending.end = start, start + len(item) / SAMPLE_RATE
            record.spoken.append(pending)
            if record.first_audio_at is None:
                record.first_audio_at = start
                self.on_reply_started()
                self.bus.publish(AudioStarted(start))
            await self.speaker.play(item)
        if record.first_audio_at is not None:
            end = await self.speaker.drain()
            self.bus.publish(AudioStopped(end, interrupted=False))

    def latency(self, record: TurnRecord) -> TurnLatency:
        """The turn's latency breakdown as an event."""
        first_audio = None
        if record.first_audio_at is not None:
            first_audio = (record.first_audio_at - record.speech_end) * 1000
        return TurnLatency(
            self.clock.now(),
            endpointing_ms=(record.endpoint_at - record.speech_end) * 1000,
            stt_ms=record.stt_ms,
            llm_first_token_ms=record.llm_first_token_ms,
            first_sentence_ms=record.first_sentence_ms,
            tts_ms=record.tts_ms,
            end_of_speech_to_first_audio_ms=first_audio,
        )
