"""The state machine driver: wake → listen → think → speak, on one event loop.

Every microphone block passes through `_on_block` in order; wake-word and VAD
inference run on a dedicated worker thread so the loop stays free for the
turn task, which owns STT, the LLM stream, TTS and the speaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from assistant.core.endpointing import Endpoint, Endpointer, EndpointSettings, looks_complete
from assistant.core.errors import TurnError
from assistant.core.ports import (
    BLOCK_SAMPLES,
    SAMPLE_RATE,
    Audio,
    Clock,
    LocalSkills,
    Microphone,
    Speaker,
    TurnDetector,
    VoiceActivity,
    WakeDetector,
    WakeHit,
)
from assistant.core.ringer import Ringer
from assistant.core.states import State, Trigger, next_state
from assistant.core.turn import Turn, TurnRecord
from assistant.events import (
    AudioStopped,
    EndOfTurnVerdict,
    Error,
    EventBus,
    Muted,
    NoSpeech,
    SpeechStarted,
    SpeechStopped,
    StateChanged,
    Wake,
)

logger = logging.getLogger(__name__)
BLOCK_S = BLOCK_SAMPLES / SAMPLE_RATE
TURN_AUDIO_BLOCKS = round(8.0 / BLOCK_S)
"""The end-of-turn model hears the last 8 s of the request."""
WAKE_PHRASE_S = 1.5
"""The longest a wake phrase takes, to its detection ("hey jarvis" is about 0.8 s)."""
RING_WINDOW_S = 3600.0
"""The listening window while something rings: closed when the ringing ends, not by a time-out."""


@dataclass(frozen=True)
class LoopSettings:
    endpoint: EndpointSettings
    preroll_s: float = 0.5
    follow_up_s: float = 0.0
    warm_on_wake: bool = True
    speculative_stt: bool = True
    drain_after_input_s: float = 120.0
    new_request_pause_s: float = 0.3
    """A wake word while listening starts a new request when it came after a pause this long;
    said without a pause it is part of the request in progress."""


class Loop:
    """Owns the state, the listening window and the one turn task."""

    def __init__(
        self,
        *,
        mic: Microphone,
        speaker: Speaker,
        clock: Clock,
        wake: WakeDetector,
        vad: VoiceActivity,
        turn: Turn,
        bus: EventBus,
        settings: LoopSettings,
        audio_executor: Executor,
        sounds: Mapping[str, Audio] | None = None,
        turn_detector: TurnDetector | None = None,
        turn_executor: Executor | None = None,
        skills: LocalSkills | None = None,
    ) -> None:
        self.mic, self.speaker, self.clock = mic, speaker, clock
        self.wake, self.vad, self.turn = wake, vad, turn
        self.bus, self.settings = bus, settings
        self.audio_executor = audio_executor
        self.sounds = dict(sounds or {})
        self.state = State.IDLE
        self.muted = False
        self._preroll: deque[Audio] = deque(maxlen=max(1, round(settings.preroll_s / BLOCK_S)))
        self._endpointer: Endpointer | None = None
        self._utterance: list[Audio] = []
        self._turn_task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._speculation: asyncio.Task[str] | None = None
        # Which pause the speculative transcript is of: (listening window, last voiced time).
        self._speculation_key: tuple[Endpointer, float | None] | None = None
        self.turn_detector = turn_detector
        self._turn_executor = turn_executor or audio_executor
        self._turn_check: asyncio.Task[None] | None = None
        self._listen_start = 0.0
        self._preroll_blocks = 0
        self.skills = skills
        self.ringer = None if skills is None else Ringer(skills, turn, bus, lambda: self.sounds.get("ring"))
        self._ring_window = False
        """The listening window is open because something rings: no wake word, the device's requests only."""
        turn.on_reply_started = lambda: self._fire(Trigger.REPLY_STARTED)
        bus.subscribe(self._on_event)

    @property
    def busy(self) -> bool:
        """A turn (or a speculative transcription, or an end-of-turn check) is computing or playing."""
        tasks = (self._turn_task, self._speculation, self._turn_check)
        ringing = self.ringer is not None and self.ringer.busy
        return ringing or any(t is not None and not t.done() for t in tasks)

    # -- state -------------------------------------------------------------
    def _fire(self, trigger: Trigger) -> None:
        new = next_state(self.state, trigger)
        if new is None:
            logger.debug("ignored %s in %s", trigger, self.state)
            return
        if new != self.state or trigger == Trigger.WAKE:
            logger.info("state %s -> %s (%s)", self.state, new, trigger)
        previous, self.state = self.state, new
        if new != previous:
            self.bus.publish(StateChanged(self.clock.now(), new.value, previous.value))

    def set_muted(self, muted: bool) -> None:
        """Mute the microphone: the wake-word engine then receives nothing."""
        if muted == self.muted:
            return
        self.muted = muted
        logger.info("microphone %s", "muted" if muted else "unmuted")
        self.bus.publish(Muted(self.clock.now(), muted))
        if muted and self.state == State.LISTENING:
            self._endpointer, self._ring_window = None, False
            self._fire(Trigger.NO_SPEECH)
        self._play_sound("mute_on" if muted else "mute_off")

    # -- the loop ----------------------------------------------------------
    async def run(self) -> None:
        """Process the microphone until its input ends and the last turn is done."""
        self.bus.publish(StateChanged(self.clock.now(), self.state.value, self.state.value))
        ended_at: float | None = None
        try:
            async for block in self.mic.blocks():
                await self._on_block(block)
                if self.mic.exhausted:
                    ended_at = ended_at if ended_at is not None else self.clock.now()
                    busy = self._turn_task is not None and not self._turn_task.done()
                    if (self.state == State.IDLE and not busy) or (
                        self.clock.now() - ended_at > self.settings.drain_after_input_s
                    ):
                        break
        finally:
            await self._cancel_all()

    async def _cancel_all(self) -> None:
        tasks = [t for t in (self._turn_task, self._speculation, self._turn_check) if t is not None]
        tasks += list(self._side_tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.ringer is not None:
            await self.ringer.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _infer(self, block: Audio, listening: bool) -> tuple[WakeHit | None, list[float]]:
        hit = self.wake.process(block)
        windows = self.vad.windows(block) if listening else []
        return hit, windows

    async def _on_block(self, block: Audio) -> None:
        self._preroll.append(block)
        self._poll_skills(self.clock.now())  # a muted microphone does not stop an alarm
        if self.muted:
            return
        loop = asyncio.get_running_loop()
        listening = self.state == State.LISTENING
        hit, windows = await loop.run_in_executor(self.audio_executor, self._infer, block, listening)
        now = self.clock.now()
        if hit is not None and (self.state != State.LISTENING or self._ring_window or self._after_a_pause()):
            self._on_wake(hit, now)
            return
        if self.state == State.LISTENING and self._endpointer is not None:
            self._utterance.append(block)
            for probability in windows:
                if self._endpointer is None:
                    break
                self._on_window(probability, now)

    def _after_a_pause(self) -> bool:
        """The request in progress paused just before the wake phrase now heard: it starts a new request."""
        if self._endpointer is None:
            return False
        return self._endpointer.resumed_after_pause(self.settings.new_request_pause_s, WAKE_PHRASE_S)

    def _on_wake(self, hit: WakeHit, now: float) -> None:
        logger.info("wake word %s (score %.2f) at %.2fs", hit.model, hit.score, now)
        self.bus.publish(Wake(now, hit.model, float(hit.score)))
        if self.ringer is not None and self.ringer.silence():
            logger.info("the wake word stopped the ringing")
            self.speaker.stop()
        if self._turn_task is not None and not self._turn_task.done():
            self._turn_task.cancel()  # barge-in: the turn task owns LLM, TTS and playback
        self._cancel_speculation()
        if self.settings.warm_on_wake:
            self._spawn(self.turn.warm_llm(now), "llm-warm")
        self._start_listening(now, timeout_s=self.settings.endpoint.no_speech_timeout_s, preroll=True)
        self._fire(Trigger.WAKE)
        self._play_sound("wake")

    def _start_listening(self, now: float, *, timeout_s: float, preroll: bool) -> None:
        endpoint = self.settings.endpoint
        if timeout_s != endpoint.no_speech_timeout_s:
            endpoint = replace(endpoint, no_speech_timeout_s=timeout_s)
        self._endpointer = Endpointer(endpoint)
        self._listen_start = now  # the VAD starts afresh here: endpointer times count from it
        self._utterance = list(self._preroll) if preroll else []
        self._preroll_blocks = len(self._utterance)
        self._ring_window = False
        self.vad.reset()

    def _on_window(self, probability: float, now: float) -> None:
        """One VAD window (32 ms for Silero) of the listening window."""
        endpointer = self._endpointer
        assert endpointer is not None
        event = endpointer.process(self.vad.window_s, probability)
        if event == Endpoint.SPEECH_STARTED:
            assert endpointer.speech_started_at is not None
            self.bus.publish(SpeechStarted(self._listen_start + endpointer.speech_started_at))
            if endpointer.speech_started_at > BLOCK_S * 2:
                # A pause after the wake word: keep 200 ms before the speech only (Silero marks the
                # onset within a window or two; more would catch the wake word's tail: "This is ...").
                listened = len(self._utterance) - self._preroll_blocks
                keep = listened - int((endpointer.speech_started_at - 0.2) / BLOCK_S)
                self._utterance = self._utterance[-max(keep, 1) :]
                self._preroll_blocks = 0
        elif event is None and endpointer.in_speech:
            if self.settings.speculative_stt:
                self._maybe_speculate(endpointer)
            self._maybe_check_turn(endpointer)
        elif event == Endpoint.NO_SPEECH:
            self._endpointer = None
            self.bus.publish(NoSpeech(now))
            self._fire(Trigger.NO_SPEECH)
            if not self._ring_window:
                self._play_sound("end_of_listening")
            self._ring_window = False
        elif event in (Endpoint.SPEECH_ENDED, Endpoint.TOO_LONG):
            self._endpointer = None
            assert endpointer.last_voice_end is not None
            speech_end = self._listen_start + endpointer.last_voice_end
            duration = endpointer.last_voice_end - (endpointer.speech_started_at or 0.0)
            self.bus.publish(SpeechStopped(speech_end, round(duration, 3)))
            audio = np.concatenate(self._utterance)
            record = TurnRecord(speech_end=speech_end, endpoint_at=now)
            speculation = self._take_speculation(endpointer)
            skills_only, self._ring_window = self._ring_window, False
            self._fire(Trigger.END_OF_SPEECH)
            self._play_sound("end_of_listening")
            self._turn_task = asyncio.create_task(
                self._run_turn(audio, record, speculation, skills_only=skills_only), name="turn"
            )

    # -- speculative transcription (dynamic endpointing) ----------------------
    def _maybe_speculate(self, endpointer: Endpointer) -> None:
        """During a pause, transcribe what we have to judge whether it is complete."""
        key = (endpointer, endpointer.last_voice_end)
        if endpointer.silence_s < 0.15 or key == self._speculation_key:
            return
        if self._speculation is not None and not self._speculation.done():
            return
        self._speculation_key = key
        audio = np.concatenate(self._utterance)

        async def speculate() -> str:
            text = await self.turn.speculate(audio)
            if (self._endpointer, endpointer.last_voice_end) == key:
                endpointer.hint(looks_complete(text))
            return text

        self._speculation = asyncio.create_task(speculate(), name="stt-speculate")

    def _maybe_check_turn(self, endpointer: Endpointer) -> None:
        """During a pause, ask the end-of-turn model (one call at a time, off the loop)."""
        detector = self.turn_detector
        if detector is None or not endpointer.turn_check_due():
            return
        if self._turn_check is not None and not self._turn_check.done():
            return
        silence_ms = endpointer.silence_s * 1000
        key = endpointer.turn_check_started()
        audio = np.concatenate(self._utterance[-TURN_AUDIO_BLOCKS:])
        loop = asyncio.get_running_loop()

        async def check() -> None:
            started = time.perf_counter()
            try:
                probability = await loop.run_in_executor(self._turn_executor, detector.finished, audio)
            except Exception:
                logger.warning("end-of-turn model failed; the turn ends on silence", exc_info=True)
                return
            endpointer.turn_verdict(key, probability)
            ms = (time.perf_counter() - started) * 1000
            logger.debug("end of turn: %.3f after %.0f ms of silence (%.0f ms)", probability, silence_ms, ms)
            self.bus.publish(EndOfTurnVerdict(self.clock.now(), round(probability, 4), round(silence_ms), round(ms, 1)))

        self._turn_check = asyncio.create_task(check(), name="turn-check")

    def _take_speculation(self, endpointer: Endpointer) -> asyncio.Task[str] | None:
        """The speculative transcript, if it is of exactly the audio that ended the turn."""
        task, self._speculation = self._speculation, None
        if task is not None and self._speculation_key != (endpointer, endpointer.last_voice_end):
            task.cancel()
            return None
        return task

    def _cancel_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation.cancel()
            self._speculation = None

    # -- the turn ----------------------------------------------------------
    async def _run_turn(
        self, audio: Audio, record: TurnRecord, speculation: asyncio.Task[str] | None, *, skills_only: bool = False
    ) -> None:
        """Transcribe, then the device's own answer or the LLM's; `skills_only`: no wake word was said (ringing)."""
        interrupted = False
        keep = not skills_only  # what history keeps: not a word said to a ringing timer
        try:
            try:
                await self.turn.transcribe(audio, record, speculation)
            except TurnError as error:
                if skills_only:  # nobody asked: no apology, the ringing goes on
                    logger.info("while ringing: %s", error)
                    record.transcript = ""
                else:
                    await self.turn.fail(record, error)
                self._finish(record, follow_up=not skills_only)
                return
            answer = None if self.skills is None else self.skills.handle(record.transcript, self.clock.now())
            if answer is not None:
                keep = keep and answer.action != "stop"
                await self._answer(record, answer.text, answer.action)
            elif skills_only:
                logger.info("while ringing, %r is not one of the device's requests: ignored", record.transcript)
            else:
                await self.turn.respond(record)
        except asyncio.CancelledError:
            interrupted = True
            stopped_at = self.speaker.stop()
            if record.first_audio_at is not None:
                self.bus.publish(AudioStopped(stopped_at, interrupted=True))
            self._remember(record, until=stopped_at, keep=keep)
            raise
        finally:
            if not interrupted:
                self.bus.publish(self.turn.latency(record))
        self._remember(record, until=None, keep=keep)
        self._finish(record, follow_up=not skills_only)

    async def _answer(self, record: TurnRecord, text: str, action: str) -> None:
        """The device's own answer: "stop" silences speech and ringing; the rest is spoken (at the new gain)."""
        if action == "stop":
            if self.ringer is not None:
                self.ringer.silence()
            self.speaker.stop()
        await self.turn.answer(record, text)

    def _remember(self, record: TurnRecord, until: float | None, *, keep: bool = True) -> None:
        heard = record.heard(until)
        if self.skills is not None:
            self.skills.remember(heard.rstrip("…"))  # what "repeat that" says: the LLM's reply or a skill's
        if record.transcript and keep:
            self.turn.remember(record, heard)

    def _finish(self, record: TurnRecord, *, follow_up: bool = True) -> None:
        if follow_up and self.settings.follow_up_s > 0 and not record.failed and record.transcript:
            self._start_listening(self.clock.now(), timeout_s=self.settings.follow_up_s, preroll=False)
            self._fire(Trigger.FOLLOW_UP)
        else:
            self._fire(Trigger.REPLY_DONE)  # a turn always has a transcript or has failed

    # -- what rings ----------------------------------------------------------
    def _poll_skills(self, now: float) -> None:
        """Once per block: announce what falls due; while it rings, listen for "stop" without the wake word."""
        if self.ringer is None or self.skills is None:
            return
        free = self._turn_task is None or self._turn_task.done()
        self.ringer.poll(now, speaker_free=free)
        ringing = self.skills.ringing
        if ringing and free and self.state == State.IDLE and not self.muted:
            self._start_listening(now, timeout_s=RING_WINDOW_S, preroll=False)
            self._ring_window = True
            self._fire(Trigger.RING)
        elif not ringing and self._ring_window and self.state == State.LISTENING:
            endpointer = self._endpointer
            if endpointer is None or not endpointer.in_speech:
                self._endpointer, self._ring_window = None, False
                self._fire(Trigger.NO_SPEECH)

    # -- sounds --------------------------------------------------------------
    def _on_event(self, event: object) -> None:
        if isinstance(event, Error):
            self._play_sound("error")

    def _play_sound(self, name: str) -> None:
        sound = self.sounds.get(name)
        if sound is not None:
            self._spawn(self._play(sound), f"sound-{name}")

    async def _play(self, sound: Audio) -> None:
        await self.speaker.play(sound)
