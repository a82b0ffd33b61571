"""Sentence splitting of streamed LLM text."""

from __future__ import annotations

import pytest

from assistant.core.sentences import SentenceSplitter, clean_for_speech


def stream(text: str, splitter: SentenceSplitter, step: int = 3) -> list[str]:
    out: list[str] = []
    for i in range(0, len(text), step):
        out += splitter.push(text[i : i + step])
    return out + splitter.flush()


CASES = [
    ("Paris is the capital. It is big!", 0, ["Paris is the capital.", "It is big!"]),
    ("Dr. Smith met Mr. Jones at 3.5 km. Then left.", 0, ["Dr. Smith met Mr. Jones at 3.5 km.", "Then left."]),
    ("J. R. R. Tolkien wrote it. Yes?", 0, ["J. R. R. Tolkien wrote it.", "Yes?"]),
    (
        "The capital of France is Paris, a city on the Seine. Nice, right?",
        20,
        ["The capital of France is Paris,", "a city on the Seine.", "Nice, right?"],
    ),
    ("Yes, it is. Sure.", 20, ["Yes, it is.", "Sure."]),
    ("**Paris** is the `capital`.\n\n# Next\nMore", 0, ["Paris is the capital.", "Next", "More"]),
    ("No ending punctuation", 0, ["No ending punctuation"]),
    ("Wait... what? Really!?", 0, ["Wait...", "what?", "Really!?"]),
]


@pytest.mark.parametrize(("text", "first", "expected"), CASES)
@pytest.mark.parametrize("step", [1, 3, 50])
def test_splitting(text: str, first: int, expected: list[str], step: int) -> None:
    assert stream(text, SentenceSplitter(first), step) == expected


def test_first_chunk_comes_before_the_sentence_ends() -> None:
    splitter = SentenceSplitter(first_min_chars=20)
    emitted = splitter.push("The capital of France is Paris, ")
    assert emitted == ["The capital of France is Paris,"]
    assert splitter.push("which is big, and old") == []  # later chunks wait for the sentence


def test_clean_for_speech_keeps_link_words() -> None:
    assert clean_for_speech("See [the docs](http://x.y) *now*") == "See the docs now"


def test_first_clause_is_cut_without_waiting_for_the_next_token() -> None:
    splitter = SentenceSplitter(first_min_chars=20)
    assert splitter.push("The capital of France is Paris,") == ["The capital of France is Paris,"]
    numbers = SentenceSplitter(first_min_chars=5)
    assert numbers.push("It has about 2,") == []  # "2," may become "2,100"
    assert numbers.push("100 people, and") == ["It has about 2,100 people,"]
