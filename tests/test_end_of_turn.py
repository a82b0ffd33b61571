"""End-of-turn model in the endpointer: audio time in, a fake model's verdicts fed back."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from assistant.core.endpointing import Endpoint, Endpointer, EndpointSettings

WINDOW = 0.032
SMART = EndpointSettings(
    min_speech_s=0.064,
    silence_s=0.7,
    turn_check_s=0.2,
    turn_recheck_s=0.1,
    turn_max_silence_s=1.6,
    turn_threshold=0.5,
)


@dataclass
class FakeModel:
    """Answers each check with the next probability; the verdict lands `lag` windows later."""

    answers: list[float]
    lag: int = 2
    asked_at: list[float] = field(default_factory=list)  # silence (s) at each call


def drive(settings: EndpointSettings, voiced: list[bool], model: FakeModel | None, hints: dict[int, bool]) -> float:
    """Run windows through the endpointer like the assistant does; the time the turn ended (or -1)."""
    e = Endpointer(settings)
    pending: list[tuple[int, float | None, float]] = []  # (window due, key, probability)
    for i, v in enumerate(voiced):
        for item in [p for p in pending if p[0] == i]:
            e.turn_verdict(item[1], item[2])
            pending.remove(item)
        if i in hints:
            e.hint(hints[i])
        event = e.process(WINDOW, 0.9 if v else 0.0)
        if event == Endpoint.SPEECH_ENDED:
            return round(e.elapsed_s, 3)
        if model is not None and not pending and e.turn_check_due():
            model.asked_at.append(round(e.silence_s, 3))
            key = e.turn_check_started()
            pending.append((i + model.lag, key, model.answers[min(len(model.asked_at) - 1, len(model.answers) - 1)]))
    return -1.0


def windows(*parts: tuple[bool, float]) -> list[bool]:
    out: list[bool] = []
    for voiced, seconds in parts:
        out += [voiced] * round(seconds / WINDOW)
    return out


SPEECH_1S = (True, 32 * WINDOW)
END = 32 * WINDOW


@pytest.mark.parametrize(
    ("name", "audio", "answers", "hints", "settings", "ended_after_speech"),
    [
        # "Finished" at the first check (after 7 windows = 224 ms) lands 2 windows later: ended at window 9.
        ("finished ends at once", [SPEECH_1S, (False, 3.0)], [0.98], {}, SMART, 9 * WINDOW),
        # "Not finished" every time: the longer limit ends it.
        ("not finished waits for the limit", [SPEECH_1S, (False, 3.0)], [0.1], {}, SMART, 50 * WINDOW),
        # A pause mid-sentence, then the rest: the first pause never ends the turn.
        (
            "pause mid-sentence is kept",
            [SPEECH_1S, (False, 1.0), SPEECH_1S, (False, 3.0)],
            [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.99],
            {},
            SMART,
            None,
        ),
        # "Finished" but the transcript trails off ("remind me to"): wait for the limit.
        ("trailing transcript overrules", [SPEECH_1S, (False, 3.0)], [0.97], {32 + 6: False}, SMART, 50 * WINDOW),
        # Needing the transcript: "finished" waits for it, then ends.
        (
            "waits for the transcript",
            [SPEECH_1S, (False, 3.0)],
            [0.97],
            {32 + 14: True},
            EndpointSettings(**{**SMART.__dict__, "turn_needs_hint": True}),
            15 * WINDOW,
        ),
        # No model at all: the fixed silence.
        (
            "fixed silence without the model",
            [SPEECH_1S, (False, 3.0)],
            [],
            {},
            EndpointSettings(min_speech_s=0.064),
            22 * WINDOW,
        ),
    ],
)
def test_end_of_turn_table(
    name: str,
    audio: list[tuple[bool, float]],
    answers: list[float],
    hints: dict[int, bool],
    settings: EndpointSettings,
    ended_after_speech: float | None,
) -> None:
    model = FakeModel(answers) if answers else None
    voiced = windows(*audio)
    ended = drive(settings, voiced, model, hints)
    last_voiced = max(i for i, v in enumerate(voiced) if v) + 1
    if ended_after_speech is None:  # the turn ends only after the second part
        assert ended > last_voiced * WINDOW, name
        return
    assert ended == pytest.approx(END + ended_after_speech, abs=1e-6), name


def test_the_model_is_asked_at_most_once_per_recheck_interval() -> None:
    model = FakeModel([0.1], lag=1)
    drive(SMART, windows(SPEECH_1S, (False, 3.0)), model, {})
    assert model.asked_at[0] == pytest.approx(7 * WINDOW)
    gaps = [b - a for a, b in zip(model.asked_at, model.asked_at[1:], strict=False)]
    assert gaps and min(gaps) >= SMART.turn_recheck_s - 1e-9
    assert len(model.asked_at) <= (SMART.turn_max_silence_s - SMART.turn_check_s) / SMART.turn_recheck_s + 1


def test_a_verdict_on_an_earlier_pause_is_ignored() -> None:
    e = Endpointer(SMART)
    for v in windows(SPEECH_1S, (False, 0.25)):
        e.process(WINDOW, 0.9 if v else 0.0)
    assert e.turn_check_due()
    key = e.turn_check_started()
    for v in windows(SPEECH_1S, (False, 0.1)):  # the speaker goes on before the verdict is back
        assert e.process(WINDOW, 0.9 if v else 0.0) is None
    e.turn_verdict(key, 0.99)
    assert e.process(WINDOW, 0.0) is None  # the stale "finished" does not end the new pause


def test_no_check_before_speech_or_before_the_first_silence() -> None:
    e = Endpointer(SMART)
    assert not e.turn_check_due()
    for v in windows(SPEECH_1S, (False, 0.16)):
        e.process(WINDOW, 0.9 if v else 0.0)
        assert not e.turn_check_due()
