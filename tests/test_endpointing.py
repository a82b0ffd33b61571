"""Endpointing on synthetic VAD sequences (audio time, never the wall clock)."""

from __future__ import annotations

import pytest

from assistant.core.endpointing import Endpoint, Endpointer, EndpointSettings, looks_complete

BLOCK = 0.08


def feed(endpointer: Endpointer, probabilities: list[float]) -> list[tuple[int, Endpoint]]:
    events = []
    for i, p in enumerate(probabilities):
        event = endpointer.process(BLOCK, p)
        if event is not None:
            events.append((i, event))
    return events


def test_speech_then_silence_ends_after_the_silence() -> None:
    e = Endpointer(EndpointSettings(silence_s=0.4, min_speech_s=0.16))
    events = feed(e, [0.0] * 3 + [0.9] * 10 + [0.1] * 10)
    assert events == [(4, Endpoint.SPEECH_STARTED), (17, Endpoint.SPEECH_ENDED)]
    assert e.speech_started_at == pytest.approx(3 * BLOCK)
    assert e.last_voice_end == pytest.approx(13 * BLOCK)


def test_short_click_is_not_speech_and_times_out() -> None:
    e = Endpointer(EndpointSettings(min_speech_s=0.2, no_speech_timeout_s=1.0))
    events = feed(e, [0.9, 0.0] * 10)
    assert events == [(12, Endpoint.NO_SPEECH)]


def test_pause_shorter_than_silence_keeps_listening() -> None:
    e = Endpointer(EndpointSettings(silence_s=0.5, min_speech_s=0.08))
    events = feed(e, [0.9] * 5 + [0.0] * 5 + [0.9] * 5 + [0.0] * 7)
    assert [ev for _, ev in events] == [Endpoint.SPEECH_STARTED, Endpoint.SPEECH_ENDED]
    assert events[-1][0] == 21


def test_cap_on_utterance_length() -> None:
    e = Endpointer(EndpointSettings(max_utterance_s=1.0, min_speech_s=0.08))
    events = feed(e, [0.9] * 30)
    assert events[-1] == (12, Endpoint.TOO_LONG)


def test_nothing_after_the_end() -> None:
    e = Endpointer(EndpointSettings(silence_s=0.16, min_speech_s=0.08))
    feed(e, [0.9, 0.0, 0.0])
    assert e.done and e.process(BLOCK, 0.9) is None


def test_dynamic_endpointing_hints() -> None:
    settings = EndpointSettings(silence_s=0.8, complete_silence_s=0.32, trailing_silence_s=1.6, min_speech_s=0.08)
    complete = Endpointer(settings)
    feed(complete, [0.9] * 3)
    complete.hint(True)
    assert feed(complete, [0.0] * 30)[0] == (3, Endpoint.SPEECH_ENDED)
    trailing = Endpointer(settings)
    feed(trailing, [0.9] * 3)
    trailing.hint(False)
    assert feed(trailing, [0.0] * 30)[0] == (19, Endpoint.SPEECH_ENDED)
    # New speech cancels a hint.
    reset = Endpointer(settings)
    feed(reset, [0.9] * 3)
    reset.hint(True)
    feed(reset, [0.9])
    assert reset.required_silence_s() == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What is the capital of France?", True),
        ("Turn on the lights.", True),
        ("What is the capital of, um", False),
        ("Tell me about the weather and", False),
        ("I want...", False),
        ("Remind me too.", False),  # Whisper's spelling of a trailing "to"
        ("Set a timer for.", False),
        ("Paris", None),
        ("", None),
    ],
)
def test_looks_complete(text: str, expected: bool | None) -> None:
    assert looks_complete(text) is expected


def test_speech_resumed_after_a_pause_is_known_for_a_while() -> None:
    e = Endpointer(EndpointSettings(silence_s=1.0, min_speech_s=0.16))
    feed(e, [0.0] * 2 + [0.9] * 5 + [0.1] * 5 + [0.9] * 3)  # a 0.4 s pause, then 0.24 s of speech
    assert e.resumed_after_pause(0.4, within_s=0.24)
    assert not e.resumed_after_pause(0.48, within_s=1.0), "no pause that long"
    assert not e.resumed_after_pause(0.4, within_s=0.16), "it resumed longer ago"
    feed(e, [0.1] + [0.9] * 3)  # a pause of one block is no pause before a new request
    assert e.resumed_after_pause(0.08, within_s=0.32)
    assert not e.resumed_after_pause(0.4, within_s=0.3)


def test_no_pause_before_the_first_words() -> None:
    e = Endpointer(EndpointSettings(min_speech_s=0.16))
    feed(e, [0.0] * 8 + [0.9] * 4)  # the lead-in silence is not a pause in the request
    assert not e.resumed_after_pause(0.0, within_s=10.0)
