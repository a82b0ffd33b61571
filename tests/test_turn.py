"""One turn with fake engines: a failed transcription is spoken as an apology; an absent LLM is told once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.clock import SampleClock
from assistant.audio.wav import WavSpeaker
from assistant.core.errors import LlmModelMissing, LlmTimeout, LlmUnreachable, SpeechToTextFailed
from assistant.core.history import History
from assistant.core.ports import BLOCK_SAMPLES, Audio
from assistant.core.turn import Turn, TurnRecord, TurnSettings
from assistant.events import Event, EventBus, LlmHostUp


class BrokenStt:
    def transcribe(self, audio: Audio, cancel: object = None) -> str:
        raise RuntimeError("whisper.cpp failed")


class ToneTts:
    def synthesize(self, text: str) -> Audio:
        return np.full(1600, 0.5, np.float32)


class NoLlm:
    async def warm(self, messages: object) -> None:
        raise AssertionError("not used")

    def stream(self, messages: object) -> object:
        raise AssertionError("no LLM request after a failed transcription")


async def tick(clock: SampleClock) -> None:
    while True:  # the microphone's place: move the shared clock on
        clock.advance(BLOCK_SAMPLES)
        await asyncio.sleep(0)


def test_failed_transcription_is_an_error_and_an_apology(tmp_path: Path) -> None:
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    clock = SampleClock()
    history = History("sys", max_turns=4, forget_after_s=0)

    async def scenario() -> TurnRecord:
        with ThreadPoolExecutor(1) as pool:
            turn = Turn(
                stt=BrokenStt(),
                llm=NoLlm(),
                tts=ToneTts(),  # type: ignore[arg-type]
                speaker=WavSpeaker(tmp_path / "out.wav", clock),
                clock=clock,
                bus=bus,
                history=history,
                settings=TurnSettings("m", "Sorry.", not_heard="Say again?"),
                executor=pool,
            )
            ticker = asyncio.create_task(tick(clock))
            record = TurnRecord(speech_end=0.0, endpoint_at=0.0)
            with pytest.raises(SpeechToTextFailed) as raised:
                await turn.transcribe(np.zeros(16000, np.float32), record, None)
            await turn.fail(record, raised.value)
            assert record.failed
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            return record

    record = asyncio.run(scenario())
    seen = [e.to_dict() for e in events]
    assert [e["type"] for e in seen] == ["error", "sentence", "audio_started", "audio_stopped"]
    assert seen[0]["code"] == "stt_failed" and "whisper.cpp failed" in seen[0]["message"]
    assert seen[1]["text"] == "Say again?", "a failed transcription asks the user to say it again"
    assert seen[3]["interrupted"] is False
    assert record.first_audio_at is not None
    assert record.heard(None) == "", "the apology is not part of the conversation"


NOTICE = "General questions need the LLM server."


class OutageLlm:
    """Each request takes the next outcome: a reply's text, or an error raised before any of it."""

    def __init__(self, outcomes: list[str | Exception]) -> None:
        self.outcomes = outcomes

    async def warm(self, messages: object, options: object = None) -> None:
        return None

    async def stream(self, messages: object, options: object = None) -> AsyncIterator[str]:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        yield outcome


def outage_turn(
    llm: object,
    clock: SampleClock,
    bus: EventBus,
    out: Path,
    pool: ThreadPoolExecutor,
    notice: str = "",
    perf: Callable[[], float] = time.perf_counter,
) -> Turn:
    """A turn whose LLM follows `llm`'s script, speaking the tone voice into `out`; its STT always fails."""
    return Turn(
        stt=BrokenStt(),
        llm=llm,  # type: ignore[arg-type]
        tts=ToneTts(),  # type: ignore[arg-type]
        speaker=WavSpeaker(out, clock),
        clock=clock,
        bus=bus,
        history=History("sys", max_turns=4, forget_after_s=0),
        settings=TurnSettings("m", "Sorry.", llm_unavailable=notice),
        executor=pool,
        perf=perf,
    )


def test_the_llm_missing_is_told_once_per_outage(tmp_path: Path) -> None:
    """The notice the first time a question finds no LLM; the apology after; again only once it was back."""
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    clock = SampleClock()
    refused = LlmUnreachable("cannot reach Ollama at http://127.0.0.1:9")
    llm = OutageLlm(
        [
            refused,
            LlmModelMissing("no model 'm'"),  # the same outage: the server came up without the model
            refused,
            "Paris.",  # answers again
            refused,  # gone again: a new outage
            LlmTimeout("no first piece within 5 s"),  # slow, not absent: the apology
            refused,  # back (a background check found a host), gone again
            refused,
        ]
    )

    async def scenario() -> list[str]:
        said: list[str] = []
        with ThreadPoolExecutor(1) as pool:
            turn = outage_turn(llm, clock, bus, tmp_path / "out.wav", pool, NOTICE)
            ticker = asyncio.create_task(tick(clock))
            for index in range(8):
                if index == 6:
                    bus.publish(LlmHostUp(clock.now(), "http://127.0.0.1:9", "m", True))
                record = TurnRecord(speech_end=clock.now(), endpoint_at=clock.now(), transcript="What is it?")
                before = len(events)
                await turn.respond(record)
                said.append(" ".join(e.to_dict()["text"] for e in events[before:] if e.type == "sentence"))
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        return said

    said = asyncio.run(scenario())
    assert said == [NOTICE, "Sorry.", "Sorry.", "Paris.", NOTICE, "Sorry.", NOTICE, "Sorry."]
    codes = [e.to_dict()["code"] for e in events if e.type == "error"]
    assert codes == [
        "llm_unreachable",
        "llm_model_missing",
        "llm_unreachable",
        "llm_unreachable",
        "llm_timeout",
        "llm_unreachable",
        "llm_unreachable",
    ], "every failure is still an error event"


def test_no_notice_configured_is_the_apology_every_time(tmp_path: Path) -> None:
    clock = SampleClock()
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    llm = OutageLlm([LlmUnreachable("refused"), LlmUnreachable("refused")])

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            turn = outage_turn(llm, clock, bus, tmp_path / "out.wav", pool, "")
            ticker = asyncio.create_task(tick(clock))
            for _ in range(2):
                await turn.respond(TurnRecord(speech_end=clock.now(), endpoint_at=clock.now(), transcript="Hi?"))
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    asyncio.run(scenario())
    assert [e.to_dict()["text"] for e in events if e.type == "sentence"] == ["Sorry.", "Sorry."]


def test_the_wait_for_a_speculative_transcript_counts_as_stt_ms(tmp_path: Path) -> None:
    # The turn ended before the transcript of its pause was done: the user waits for it, so it is the STT's share.
    now = [10.0]
    clock = SampleClock()

    async def speculation() -> str:
        await asyncio.sleep(0)
        now[0] += 2.5  # Whisper finishes 2.5 s after the turn ended
        return "What time is it?"

    async def scenario() -> TurnRecord:
        with ThreadPoolExecutor(1) as pool:
            # The STT would fail if it were asked: the speculation holds the words.
            turn = outage_turn(NoLlm(), clock, EventBus(), tmp_path / "out.wav", pool, perf=lambda: now[0])
            record = TurnRecord(speech_end=0.0, endpoint_at=0.0)
            assert await turn.transcribe(np.zeros(16000, np.float32), record, speculation()) == "What time is it?"
            return record

    assert asyncio.run(scenario()).stt_ms == pytest.approx(2500.0)


def test_a_failed_speculation_is_transcribed_again(tmp_path: Path) -> None:
    async def speculation() -> str:
        raise RuntimeError("the speculative pass failed")

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            turn = outage_turn(NoLlm(), SampleClock(), EventBus(), tmp_path / "out.wav", pool)
            with pytest.raises(SpeechToTextFailed, match=r"whisper\.cpp failed"):
                await turn.transcribe(np.zeros(16000, np.float32), TurnRecord(0.0, 0.0), speculation())

    asyncio.run(scenario())
