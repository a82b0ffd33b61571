"""One turn: transcribe → stream the LLM → speak sentence by sentence.

The whole turn is one task; cancelling it (barge-in) stops the LLM stream,
the synthesis and the speaker together, and what the user actually heard is
what the history keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from assistant.core.errors import NothingHeard, SpeechToTextFailed, TextToSpeechFailed, TurnError
from assistant.core.history import History
from assistant.core.ports import (
    SAMPLE_RATE,
    Audio,
    Clock,
    DeviceTools,
    LanguageModel,
    LlmOptions,
    Speaker,
    SpeechToText,
    TextToSpeech,
    ToolCall,
)
from assistant.core.reply import Hooks, Reply, Segment, heard_text, say, speak
from assistant.core.transcript import only_fillers, strip_wake_phrase
from assistant.core.work import run_abortable
from assistant.events import (
    AudioStarted,
    AudioStopped,
    Error,
    Event,
    EventBus,
    LlmDone,
    LlmFirstToken,
    LlmHostUp,
    LlmRequest,
    Sentence,
    ToolCalled,
    Transcript,
    TurnLatency,
)

logger = logging.getLogger(__name__)

LLM_ABSENT = frozenset({"llm_unreachable", "llm_model_missing"})
"""Failures that say the LLM is not there (nothing answers, or the model is not pulled), not that one reply broke."""


@dataclass
class TurnRecord:
    """What happened in one turn, filled in as it goes."""

    speech_end: float
    endpoint_at: float
    transcript: str = ""
    reply: Reply = field(default_factory=Reply)
    stt_ms: float | None = None
    first_audio_at: float | None = None
    failed: bool = False
    tool_calls: list[tuple[ToolCall, str]] = field(default_factory=list)
    """The device calls the LLM made for this reply, with their results (kept in the history)."""

    def heard(self, until: float | None) -> str:
        """The reply text the user heard by clock time `until` (None: all); apologies are not part of it."""
        return heard_text(self.reply.segments, until, cut_mark="…")  # the prompt then shows it was cut

    def ms_after_request(self, at: float | None) -> float | None:
        return None if at is None else (at - self.reply.requested_at) * 1000


@dataclass(frozen=True)
class TurnSettings:
    llm_model: str
    apology: str
    not_heard: str = "Sorry, I didn't catch that."
    llm_unavailable: str = ""
    """Said instead of the apology the first time in an outage that the LLM is not there (`LLM_ABSENT`)."""
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
        tools: DeviceTools | None = None,
        perf: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.stt, self.llm, self.tts = stt, llm, tts
        self.speaker, self.clock, self.bus = speaker, clock, bus
        self.history, self.settings = history, settings
        self.executor = executor
        self.tools = tools
        """The device's functions offered to the LLM (None: it gets none)."""
        self.on_reply_started: Callable[[], None] = lambda: None
        self.perf = perf
        self.told_llm_absent = False
        """This outage's notice was said; later questions get the apology until the LLM answers again."""
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, LlmFirstToken | LlmHostUp):  # the LLM answered, or a host is back
            self.told_llm_absent = False  # so a later outage is told about again

    async def warm_llm(self, now: float) -> None:
        """Send the prompt's prefix ahead of the request (the wake word just fired)."""
        await self.llm.warm(self.history.messages(None, now), self.llm_options())

    def llm_options(self, record: TurnRecord | None = None) -> LlmOptions | None:
        """The device's tools for the request, run through the same skills a spoken request reaches.

        Each call made for `record` is kept in it, so the history shows what the device did."""
        if self.tools is None:
            return None
        tools = self.tools.tools()
        if not tools:
            return None

        async def call_tool(call: ToolCall) -> str:
            result = await self._call_tool(call)
            if record is not None:
                record.tool_calls.append((call, result))
            return result

        return LlmOptions(tools=tools, call_tool=call_tool)

    async def _call_tool(self, call: ToolCall) -> str:
        assert self.tools is not None
        result = self.tools.call_tool(call.name, call.arguments, self.clock.now())
        self.bus.publish(ToolCalled(self.clock.now(), call.name, call.arguments, result))
        return result

    async def speculate(self, audio: Audio) -> str:
        """A transcript of the request so far (during a pause), on the same worker; cancellable."""
        return await run_abortable(self.executor, self.stt.transcribe, audio)

    def remember(self, record: TurnRecord, heard: str) -> None:
        """Keep the exchange for the next prompt: the request, the device calls made for it, and what
        the user heard of the answer."""
        self.history.add(record.transcript, heard, self.clock.now(), calls=tuple(record.tool_calls))

    async def transcribe(self, audio: Audio, record: TurnRecord, speculation: Awaitable[str] | None) -> str:
        """Speech-to-text, wake word removed; `speculation` is a transcript of this audio already under way
        (its wait counts as `stt_ms`; if it failed, the audio is transcribed again).

        Raises `TurnError`: `stt_failed` when Whisper fails or runs away,
        `nothing_heard` when the request held no words.
        """
        started = self.perf()
        text: str | None = None
        try:
            if speculation is not None:
                with contextlib.suppress(Exception):
                    text = await speculation
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

    async def fail(self, record: TurnRecord, error: TurnError, sink: SpeakerSink | None = None) -> None:
        """The one place a failed stage becomes an outcome: an error event and a spoken answer.

        `sink` is the reply's own when part of it was spoken: the apology follows it in one stretch.
        """
        record.failed = True
        logger.warning("turn failed (%s): %s", error.code, error)
        self.bus.publish(Error(self.clock.now(), error.code, str(error)))
        text = self._failure_text(error)
        sink = sink or SpeakerSink(self, record)
        sink.keeps_cut = False  # an apology cut short is not part of the conversation
        if text:
            await say(text, synthesize=self._synthesize, sink=sink, hooks=self._hooks())
        await sink.close()

    def _failure_text(self, error: TurnError) -> str:
        if isinstance(error, NothingHeard | SpeechToTextFailed):
            return self.settings.not_heard
        if error.code in LLM_ABSENT and self.settings.llm_unavailable and not self.told_llm_absent:
            self.told_llm_absent = True
            logger.info("the LLM is not there (%s): saying so once; the device's own intents still answer", error.code)
            return self.settings.llm_unavailable
        return self.settings.apology

    async def respond(self, record: TurnRecord) -> None:
        """Stream the reply to the speaker; a failed LLM is spoken as an apology after what arrived."""
        now = self.clock.now()
        messages = self.history.messages(record.transcript, now)
        self.bus.publish(LlmRequest(now, self.settings.llm_model, len(messages)))
        sink = SpeakerSink(self, record)
        hooks = self._hooks()
        hooks.first_token = lambda: self.bus.publish(LlmFirstToken(self.clock.now()))
        hooks.llm_done = lambda text: self.bus.publish(LlmDone(self.clock.now(), text))
        try:
            await speak(
                self.llm.stream(messages, self.llm_options(record)),
                synthesize=self._synthesize,
                sink=sink,
                first_chunk_min_chars=self.settings.first_chunk_min_chars,
                hooks=hooks,
                reply=record.reply,
                perf=self.perf,
            )
        except TurnError as error:
            await self.fail(record, error, sink)
            return
        await sink.close()

    async def answer(self, record: TurnRecord, text: str) -> None:
        """Speak the device's own answer (a skill's) through the same reply path, with no LLM request."""
        sink = SpeakerSink(self, record)
        if text:
            await say(text, synthesize=self._synthesize, sink=sink, hooks=self._hooks(), reply=record.reply)
        await sink.close()

    async def announce(self, text: str, sound: Audio | None = None) -> None:
        """A ringing timer or alarm: the ring, then its text, through the same reply path."""
        record = TurnRecord(speech_end=self.clock.now(), endpoint_at=self.clock.now())
        sink = SpeakerSink(self, record, a_reply=False)
        if sound is not None:
            await sink.play("", sound)
        if text:
            await say(text, synthesize=self._synthesize, sink=sink, hooks=self._hooks(), reply=record.reply)
        await sink.close()

    def _hooks(self) -> Hooks:
        return Hooks(chunk=lambda text: self.bus.publish(Sentence(self.clock.now(), text)), tts_failed=self._tts_failed)

    def _tts_failed(self, text: str, exc: Exception) -> None:
        logger.error("text-to-speech failed on %r: %s", text, exc)
        self.bus.publish(Error(self.clock.now(), TextToSpeechFailed.code, str(exc)))

    async def _synthesize(self, text: str) -> Audio:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.tts.synthesize, text)

    def latency(self, record: TurnRecord) -> TurnLatency:
        """The turn's latency breakdown as an event."""
        first_audio = None
        if record.first_audio_at is not None:
            first_audio = (record.first_audio_at - record.speech_end) * 1000
        reply = record.reply
        return TurnLatency(
            self.clock.now(),
            endpointing_ms=(record.endpoint_at - record.speech_end) * 1000,
            stt_ms=record.stt_ms,
            llm_first_token_ms=record.ms_after_request(reply.first_token_at),
            first_sentence_ms=record.ms_after_request(reply.first_chunk_at),
            tts_ms=None if reply.first_tts_s is None else reply.first_tts_s * 1000,
            end_of_speech_to_first_audio_ms=first_audio,
        )


class SpeakerSink:
    """The appliance's sink: the speaker, on the shared clock, with the audio events."""

    def __init__(self, turn: Turn, record: TurnRecord, *, a_reply: bool = True) -> None:
        self.turn, self.record = turn, record
        self.a_reply = a_reply
        """The turn's answer (moves the state to speaking); not an announcement of something ringing."""
        self.started = False
        self.keeps_cut = True
        """A chunk cut by a barge-in goes into the record's reply, so `heard` clips it to what sounded."""

    async def play(self, text: str, audio: Audio) -> Segment:
        speaker, clock = self.turn.speaker, self.turn.clock
        start = max(speaker.queued_until(), clock.now())
        if not self.started:
            self.started = True
            if self.record.first_audio_at is None:
                self.record.first_audio_at = start
            if self.a_reply:
                self.turn.on_reply_started()
            self.turn.bus.publish(AudioStarted(start))
        segment = Segment(text, start, start + len(audio) / SAMPLE_RATE)
        try:
            await speaker.play(audio)
        except asyncio.CancelledError:
            if self.keeps_cut:
                self.record.reply.segments.append(segment)
            raise
        return segment

    async def close(self) -> None:
        """Wait until the speaker has played it all (a cancelled turn stops the speaker instead)."""
        if self.started:
            end = await self.turn.speaker.drain()
            self.turn.bus.publish(AudioStopped(end, interrupted=False))
