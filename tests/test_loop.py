"""The real microphone loop and turn, in process, on fake engines and a speaker the test plays block by block.

What the user heard is what the history keeps: a reply cut by the wake word
is remembered up to the last whole word that sounded, and the next request
carries exactly that.  `TurnRecord.heard` is checked on its own below.
"""

from __future__ import annotations

import asyncio

import pytest

from assistant.core.errors import LlmStreamCut
from assistant.core.ports import BLOCK_SAMPLES, Message
from assistant.core.reply import Reply, Segment
from assistant.core.turn import TurnRecord
from assistant.events import AudioStarted, AudioStopped, Error, Sentence, SpeechStopped, Transcript, Wake
from tests.fakes import BLOCK_S, SPEECH, WAKE, WORD_BLOCKS, Rig, stt_failure

REPLY = (
    "The capital of France is Paris, a city on the Seine. "
    "It has been the capital for more than a thousand years. Millions of people visit it every year."
)


def chunks(rig: Rig) -> list[str]:
    return [e.text for e in rig.of(Sentence)]


async def wake_and_ask(rig: Rig) -> None:
    await rig.tick(WAKE)
    await rig.until_state("listening")
    await rig.say()
    await rig.until_event(SpeechStopped)


async def test_a_whole_reply_is_spoken_and_remembered() -> None:
    async with Rig(stt=["What is the capital of France?"], replies=[REPLY]) as rig:
        await wake_and_ask(rig)
        await rig.until_event(AudioStarted)
        spoken = 0
        while rig.assistant.state == "speaking":
            played = await rig.tick()
            spoken += played
        await rig.until_state("idle")
        said = chunks(rig)
        assert " ".join(said) == REPLY, "every chunk is synthesised, in order"
        words = len(REPLY.split())
        assert spoken == words * WORD_BLOCKS, "every block of the reply sounded once"
        assert rig.of(AudioStopped)[-1].interrupted is False
        assert rig.history.messages(None, rig.clock.now())[1:] == [
            Message("user", "What is the capital of France?"),
            Message("assistant", REPLY),
        ]
        assert rig.states() == ["idle", "listening", "thinking", "speaking", "idle"]


@pytest.mark.parametrize("whole_words", [0, 3, 7])
async def test_barge_in_mid_sentence_keeps_only_what_was_heard(whole_words: int) -> None:
    async with Rig(stt=["What is the capital of France?", "Tell me more."], replies=[REPLY, "Gladly."]) as rig:
        await wake_and_ask(rig)
        await rig.until_event(AudioStarted)
        await rig.signal.until(lambda: len(chunks(rig)) >= 3, "three chunks synthesised")
        before, sentence = chunks(rig)[:2], chunks(rig)[2]
        assert sentence == "It has been the capital for more than a thousand years."
        # The first two chunks whole, then the sentence up to half-way through word `whole_words + 1`.
        words_before = sum(len(chunk.split()) for chunk in before)
        await rig.play((words_before + whole_words) * WORD_BLOCKS)
        await rig.tick(WAKE)  # plays one more block (half a word), and the wake word is heard
        stopped = await rig.until_event(AudioStopped, interrupted=True)
        assert rig.speaker.stops == [stopped.t]
        assert rig.of(Wake)[-1].t == pytest.approx(stopped.t), "silenced within the block the wake word ended"
        await rig.until_state("listening")

        heard = " ".join([*before, *sentence.split()[:whole_words]])
        expected = heard + "…" if whole_words else " ".join(before)
        assert rig.history.messages(None, rig.clock.now())[1:] == [
            Message("user", "What is the capital of France?"),
            Message("assistant", expected),
        ]
        # Nothing after the cut sounded: the speaker's last block is the one played in the wake's tick.
        last_start = rig.speaker.sounded[-1][0]
        assert last_start + BLOCK_SAMPLES / 16000 == pytest.approx(stopped.t)

        # The next request carries the clipped reply as the assistant's turn.
        await rig.say()
        await rig.until_event(Transcript, text="Tell me more.")
        await rig.signal.until(lambda: len(rig.llm.requests) == 2, "the second LLM request")
        assert rig.llm.requests[1][1:] == [
            Message("user", "What is the capital of France?"),
            Message("assistant", expected),
            Message("user", "Tell me more."),
        ]


async def test_an_apology_cut_by_the_wake_word_is_not_remembered() -> None:
    answer = "The capital of France is Paris, a city on the Seine."
    async with Rig(
        stt=["What is the capital of France?"], replies=[answer], apology="Sorry, the answer broke off."
    ) as rig:
        rig.llm.fail_with = LlmStreamCut("the stream was cut")
        await wake_and_ask(rig)
        await rig.until_event(AudioStarted)
        await rig.play(len(answer.split()) * WORD_BLOCKS)  # what arrived is spoken before the failure counts
        await rig.until_event(Error, code=LlmStreamCut.code)
        await rig.until_event(Sentence, text="Sorry, the answer broke off.")
        await rig.play(3)  # some of the apology
        await rig.tick(WAKE)
        await rig.until_event(AudioStopped, interrupted=True)
        await rig.until_state("listening")
        assert rig.history.messages(None, rig.clock.now())[1:] == [
            Message("user", "What is the capital of France?"),
            Message("assistant", answer),
        ], "what arrived was heard whole; the apology is not part of the conversation"


async def test_barge_in_while_thinking_remembers_the_question_alone() -> None:
    async with Rig(stt=["What is the capital of France?", "Never mind."], replies=[REPLY, "Okay."]) as rig:
        rig.llm.hold = asyncio.Event()  # the first reply never starts
        await wake_and_ask(rig)
        await rig.signal.until(lambda: len(rig.llm.requests) == 1, "the first LLM request")
        assert rig.assistant.state == "thinking"
        await rig.tick(WAKE)
        await rig.until_state("listening")
        await rig.signal.until(lambda: len(rig.history) == 1, "the cut turn to be remembered")
        assert rig.speaker.sounded == [] and rig.of(AudioStopped) == [], "nothing had played, nothing is stopped"
        rig.llm.hold.set()
        await rig.say()
        await rig.until_event(AudioStarted)
        assert rig.llm.requests[1][1:] == [
            Message("user", "What is the capital of France?"),
            Message("user", "Never mind."),
        ], "the unanswered question stays, with no answer the user never heard"


async def test_a_wake_word_while_listening_is_part_of_the_request() -> None:
    async with Rig(stt=["Hey Jarvis, what time is it?"], replies=["Noon."]) as rig:
        await rig.tick()
        await rig.tick(WAKE)
        await rig.until_state("listening")
        await rig.ticks(3, SPEECH)
        await rig.tick(WAKE)  # said again mid-request: no new listening window
        await rig.say(3)
        await rig.until_event(Transcript, text="What time is it?")
        assert len(rig.of(Wake)) == 1
        assert rig.wake.blocks == 1 + 1 + 3 + 1 + 3 + 3, "the wake detector heard every block"
        # The utterance is the pre-roll (2 blocks, the wake block last) and every block since.
        assert rig.stt.heard == [(2 + 3 + 1 + 3 + 3) * BLOCK_SAMPLES]


async def test_a_wake_word_after_a_pause_in_the_request_starts_a_new_one() -> None:
    # The rig ends a turn after 3 silent blocks; here a pause of 2 blocks counts as one before a wake word.
    async with Rig(stt=["Hey Jarvis, what time is it?"], replies=["Noon."], new_request_pause_s=2 * BLOCK_S) as rig:
        await rig.tick()
        await rig.tick(WAKE)
        await rig.until_state("listening")
        await rig.ticks(3, SPEECH)
        await rig.ticks(2)  # a pause, not yet the end of the turn
        await rig.ticks(2, SPEECH)  # "hey jar-"
        await rig.tick(WAKE)  # "-vis": the wake word again, after the pause: the user starts over
        await rig.say(3)
        await rig.until_event(Transcript, text="What time is it?")
        assert len(rig.of(Wake)) == 2
        # Only the new request is transcribed: the pre-roll (2 blocks, the wake block last) and what followed.
        assert rig.stt.heard == [(2 + 3 + 3) * BLOCK_SAMPLES]


async def test_a_failed_transcription_is_an_error_an_apology_and_back_to_idle() -> None:
    async with Rig(stt=[stt_failure()], not_heard="Say again?") as rig:
        await wake_and_ask(rig)
        await rig.until_event(Error, code="stt_failed")
        await rig.until_event(AudioStarted)
        while rig.assistant.state != "idle":
            await rig.tick()
        assert chunks(rig) == ["Say again?"]
        assert len(rig.history) == 0, "an apology is not part of the conversation"
        assert rig.llm.requests == []


# -- TurnRecord.heard(until): what of the reply had sounded by a clock time -----------------


def record(*segments: Segment) -> TurnRecord:
    return TurnRecord(speech_end=0.0, endpoint_at=0.0, reply=Reply(segments=list(segments)))


ONE = Segment("one two three four", 1.0, 2.0)
TWO = Segment("five six seven eight nine ten", 2.0, 3.2)


@pytest.mark.parametrize(
    ("until", "heard"),
    [
        (None, "one two three four five six seven eight nine ten"),
        (0.5, ""),  # before the first sample
        (1.0, ""),  # at the very start: nothing has sounded
        (1.2, ""),  # inside the first word: not a word heard yet, and no lone "…"
        (1.25, "one…"),  # exactly one word of four
        (1.6, "one two…"),  # 60 %: two whole words of four
        (2.0, "one two three four"),  # the chunk's end: all of it, no ellipsis
        (2.1, "one two three four"),  # a sliver of the next chunk: none of its words
        (2.5, "one two three four five six…"),  # 5/12 of six words
        (3.2, "one two three four five six seven eight nine ten"),
        (9.0, "one two three four five six seven eight nine ten"),
    ],
)
def test_heard_clips_the_interrupted_chunk(until: float | None, heard: str) -> None:
    assert record(ONE, TWO).heard(until) == heard


def test_heard_stops_at_a_gap_and_at_the_cut() -> None:
    later = Segment("eleven twelve", 4.0, 5.0)
    turn = record(ONE, TWO, later)
    assert turn.heard(None) == "one two three four five six seven eight nine ten eleven twelve"
    assert turn.heard(3.5) == "one two three four five six seven eight nine ten", "silence between chunks"
    assert turn.heard(4.75) == "one two three four five six seven eight nine ten eleven…"
    assert turn.heard(1.6) == "one two…", "nothing after the chunk that was cut"


def test_heard_of_a_zero_length_chunk() -> None:
    empty = Segment("blip", 2.0, 2.0)
    assert record(ONE, empty).heard(2.0) == "one two three four blip", "a chunk that has ended was heard"
    assert record(ONE, empty).heard(1.99) == "one two three…"
