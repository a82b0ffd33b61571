"""The request inside a transcript (wake phrase off, fillers alone are nothing) and the word error rate."""

from __future__ import annotations

import pytest

from assistant.bench import speechset
from assistant.bench.wer import edit_distance, normalise, wer
from assistant.core.transcript import only_fillers, phrase_words, strip_wake_phrase

JARVIS = [phrase_words("hey_jarvis_v0.1")]


@pytest.mark.parametrize(
    ("heard", "asked"),
    [
        ("Hey Jarvis, what time is it?", "What time is it?"),
        ("Hey, Jarvis. Turn it down.", "Turn it down."),
        ("Jarvis, what's the date?", "What's the date?"),
        ("Hey Jervis, set a timer.", "Set a timer."),  # Whisper spells the name loosely
        ("Hey, Jeremy, turn the volume down!", "Turn the volume down!"),
        ("Hey, Jardobus, how many ounces are in a pound?", "How many ounces are in a pound?"),
        ("Hey, what's up?", "Hey, what's up?"),
        ("Okay. Hey Jarvis, stop.", "Stop."),  # other speech caught in the pre-roll
        ("What time is it?", "What time is it?"),
        ("Hey, what's up?", "Hey, what's up?"),  # "hey" alone is not the wake phrase
        ("Tell me about Jarvis Cocker.", "Tell me about Jarvis Cocker."),  # too far in to be the wake word
        ("Who is Jarvis?", "Who is Jarvis?"),
        ("Hey Jarvis.", ""),
    ],
)
def test_strip_wake_phrase(heard: str, asked: str) -> None:
    assert strip_wake_phrase(heard, JARVIS) == asked


def test_phrase_words_from_model_names() -> None:
    assert phrase_words("hey_jarvis_v0.1") == ["hey", "jarvis"]
    assert phrase_words("alexa") == ["alexa"]
    assert phrase_words("hey-my-croft") == ["hey", "my", "croft"]


@pytest.mark.parametrize(
    ("text", "empty"),
    [("uh", True), ("MMMM", True), ("Hmm, hmm.", True), ("Um, stop.", False), ("What?", False), ("", False)],
)
def test_only_fillers(text: str, empty: bool) -> None:
    assert only_fillers(text) is empty


def test_normalise_numbers_times_and_contractions() -> None:
    assert normalise("Set a timer for 10 minutes.") == ["set", "a", "timer", "for", "ten", "minutes"]
    assert normalise("Wake me at 6:30.") == ["wake", "me", "at", "six", "thirty"]
    assert normalise("What's 12 times 12?") == ["what", "is", "twelve", "times", "twelve"]
    assert normalise("It's 1,000 feet, 100%") == ["it", "is", "1000", "feet", "one", "hundred", "percent"]


def test_word_error_rate() -> None:
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert wer([("what time is it", "What time is it?")]) == 0.0
    assert wer([("what is the capital of France", "What is the capital and France?")]) == pytest.approx(1 / 6)
    assert wer([("turn the volume down", ""), ("stop", "stop")]) == pytest.approx(4 / 5)


def test_the_speech_set_spreads_voices_noise_and_pauses() -> None:
    items = speechset.items()
    assert len(items) >= 40
    assert len({i.text for i in items}) == len(items)
    voices = {i.voice.label for i in items}
    assert len(voices) == len(speechset.VOICES) and any(v.startswith("piper:") for v in voices)
    for voice in voices:
        mine = [i for i in items if i.voice.label == voice]
        mixes = {(i.noise, i.pause_s > 0) for i in mine}
        assert len(mixes) >= 3, (voice, mixes)
