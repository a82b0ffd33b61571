"""The core's one reply path: stream -> split -> synthesize -> sink, what was heard, and the prompt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import numpy as np
import pytest

from assistant.core.errors import LlmStreamCut, TextToSpeechFailed
from assistant.core.ports import Audio, Message
from assistant.core.reply import Hooks, Reply, Segment, heard, heard_text, prompt, say, speak

RATE = 1000  # one sample per millisecond of the fake sink's timeline


async def tokens(*pieces: str, fail_after: int | None = None, closed: list[bool] | None = None) -> AsyncGenerator[str]:
    try:
        for index, piece in enumerate(pieces):
            if fail_after is not None and index == fail_after:
                raise LlmStreamCut("the stream was cut")
            await asyncio.sleep(0)
            yield piece
    finally:
        if closed is not None:
            closed.append(True)


async def voice(text: str) -> Audio:
    """10 ms of audio per character."""
    await asyncio.sleep(0)
    return np.zeros(10 * len(text), np.float32)


class Sink:
    """Lays chunks end to end; `gate` lets a test hold the speaker, `two_played` fires at the second chunk."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.played: list[str] = []
        self.at = 0.0
        self.gate = gate
        self.two_played = asyncio.Event()

    async def play(self, text: str, audio: Audio) -> Segment:
        if self.gate is not None:
            await self.gate.wait()
        self.played.append(text)
        if len(self.played) == 2:
            self.two_played.set()
        segment = Segment(text, self.at, self.at + len(audio) / RATE)
        self.at = segment.end
        return segment


def test_chunks_go_to_the_sink_in_order_first_at_a_clause() -> None:
    sink = Sink()
    seen: list[str] = []
    done: list[str] = []
    hooks = Hooks(chunk=seen.append, llm_done=done.append)
    stream = tokens("The capital of France is Paris,", " a city", " on the Seine.", " It is old.")
    reply = asyncio.run(speak(stream, synthesize=voice, sink=sink, first_chunk_min_chars=24, hooks=hooks))
    assert sink.played == seen == ["The capital of France is Paris,", "a city on the Seine.", "It is old."]
    assert done == ["The capital of France is Paris, a city on the Seine. It is old."]
    assert [s.text for s in reply.segments] == sink.played
    assert reply.segments[1].start == reply.segments[0].end
    assert reply.first_token_at is not None and reply.first_chunk_at is not None and reply.first_tts_s is not None


def test_a_cut_stream_speaks_what_arrived_then_raises() -> None:
    sink = Sink()
    stream = tokens("One sentence.", " Half of the", " next.", fail_after=2)
    with pytest.raises(LlmStreamCut):
        asyncio.run(speak(stream, synthesize=voice, sink=sink, first_chunk_min_chars=0))
    assert sink.played == ["One sentence.", "Half of the"]


def test_a_failed_chunk_is_skipped_or_ends_the_reply() -> None:
    async def picky(text: str) -> Audio:
        if "bad" in text:
            raise RuntimeError("no phonemes")
        return await voice(text)

    skipped: list[str] = []
    sink = Sink()
    hooks = Hooks(tts_failed=lambda text, exc: skipped.append(text))
    stream = tokens("Good one.", " A bad one.", " Good again.")
    asyncio.run(speak(stream, synthesize=picky, sink=sink, first_chunk_min_chars=0, hooks=hooks))
    assert sink.played == ["Good one.", "Good again."] and skipped == ["A bad one."]
    with pytest.raises(TextToSpeechFailed, match="no phonemes"):
        stream = tokens("Good one.", " A bad one.", " Good again.")
        asyncio.run(speak(stream, synthesize=picky, sink=Sink(), first_chunk_min_chars=0))


def test_cancelling_stops_the_stream_and_keeps_what_was_played() -> None:
    closed: list[bool] = []
    reply = Reply()

    async def scenario() -> None:
        gate = asyncio.Event()
        sink = Sink(gate)
        stream = tokens(*[f" Sentence {n}." for n in range(50)], closed=closed)
        task = asyncio.create_task(speak(stream, synthesize=voice, sink=sink, first_chunk_min_chars=0, reply=reply))
        original = sink.play

        async def hold_after_two(text: str, audio: Audio) -> Segment:
            if len(sink.played) == 2:
                gate.clear()  # the speaker holds the third chunk: the user barges in now
            return await original(text, audio)

        sink.play = hold_after_two  # type: ignore[method-assign]
        gate.set()
        await asyncio.wait_for(sink.two_played.wait(), 5)
        for _ in range(20):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert closed == [True], "the LLM stream was closed"
    assert [s.text for s in reply.segments] == ["Sentence 0.", "Sentence 1."], "nothing after the barge-in"


def test_say_speaks_a_fixed_text_whole() -> None:
    sink = Sink()
    asyncio.run(say("Sorry, I couldn't get an answer just now.", synthesize=voice, sink=sink))
    assert sink.played == ["Sorry, I couldn't get an answer just now."]


SEGMENTS = [Segment("one two three four", 0.0, 1.0), Segment("five six", 1.0, 2.0), Segment("seven", 2.0, 3.0)]


@pytest.mark.parametrize(
    ("until", "text", "marked"),
    [
        (None, "one two three four five six seven", "one two three four five six seven"),
        (3.5, "one two three four five six seven", "one two three four five six seven"),
        (1.0, "one two three four", "one two three four"),
        (0.5, "one two", "one two…"),
        (0.74, "one two", "one two…"),
        (0.76, "one two three", "one two three…"),
        (1.5, "one two three four five", "one two three four five…"),
        (1.2, "one two three four", "one two three four"),  # too little of "five six" for a word
        (0.0, "", ""),
    ],
)
def test_heard(until: float | None, text: str, marked: str) -> None:
    assert heard_text(SEGMENTS, until) == text
    assert heard_text(SEGMENTS, until, cut_mark="…") == marked


def test_heard_cuts_the_last_segment_at_the_time() -> None:
    cut = heard(SEGMENTS, 1.5)
    assert cut[-1] == Segment("five", 1.0, 1.5, cut=True)
    assert cut[:2] == [*SEGMENTS[:1], cut[1]]


def test_prompt_keeps_the_turns_with_words() -> None:
    assert prompt("Be brief.", [("user", "Hi"), ("assistant", ""), ("user", "Time?")]) == [
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("user", "Time?"),
    ]
    assert prompt("", [("user", "Hi")]) == [Message("user", "Hi")]
