"""One turn with fake engines: a failed transcription is spoken as an apology."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.clock import SampleClock
from assistant.audio.wav import WavSpeaker
from assistant.core.errors import SpeechToTextFailed
from assistant.core.history import History
from assistant.core.ports import BLOCK_SAMPLES, Audio
from assistant.core.turn import Turn, TurnRecord, TurnSettings
from assistant.events import Event, EventBus


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
