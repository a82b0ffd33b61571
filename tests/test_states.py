"""The transition table, from the loop's side: the real `Assistant` on fakes fires every row, and only those.

Each scenario drives the loop (tests/fakes.py) and records every
(state, trigger) it asks `next_state` about, in order; between them the
scenarios cover the whole table, so a row the loop can never fire, or a
trigger the table would ignore, fails here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace

import pytest

from assistant.core import loop as loop_module
from assistant.core.states import TRANSITIONS, State, Trigger, next_state
from assistant.events import AudioStarted, NoSpeech, Ringing, SpeechStopped, StateChanged
from tests.fakes import SPEECH, WAKE, FakeSkills, Rig

IDLE, LISTENING, THINKING, SPEAKING = State.IDLE, State.LISTENING, State.THINKING, State.SPEAKING
Pairs = list[tuple[State, Trigger]]


@pytest.fixture
def fired(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pairs]:
    """Every (state, trigger) the loop looks up, in order."""
    seen: Pairs = []

    def recording(state: State, trigger: Trigger) -> State | None:
        seen.append((state, trigger))
        return next_state(state, trigger)

    monkeypatch.setattr(loop_module, "next_state", recording)
    yield seen


async def ask(rig: Rig) -> None:
    await rig.tick(WAKE)
    await rig.until_state("listening")
    await rig.say()
    await rig.until_event(SpeechStopped)


async def until(rig: Rig, state: str) -> None:
    """Let the room run (the reply plays in step) until the loop is in `state`."""
    for _ in range(400):
        if rig.assistant.state == state:
            return
        await rig.tick()
    raise AssertionError(f"never reached {state}; states {rig.states()}")


async def nobody_speaks(rig: Rig) -> None:
    await rig.tick(WAKE)
    await until(rig, "idle")
    assert rig.of(NoSpeech)


async def a_reply(rig: Rig) -> None:
    await ask(rig)
    await until(rig, "idle")


async def barge_in_while_speaking(rig: Rig) -> None:
    await ask(rig)
    await rig.until_event(AudioStarted)
    await rig.play(3)
    await rig.tick(WAKE)
    await rig.until_state("listening")


async def barge_in_while_thinking(rig: Rig) -> None:
    rig.llm.hold = asyncio.Event()
    await ask(rig)
    await rig.signal.until(lambda: rig.llm.requests != [], "the LLM request")
    await rig.tick(WAKE)
    await rig.until_state("listening")


async def nothing_to_say(rig: Rig) -> None:
    rig.llm.replies = [""]
    await ask(rig)
    await until(rig, "idle")
    assert rig.speaker.sounded == []


async def follow_up(rig: Rig) -> None:
    rig.assistant.settings = replace(rig.assistant.settings, follow_up_s=0.4)
    await ask(rig)
    await until(rig, "listening")  # after the reply, without a wake word
    await until(rig, "idle")  # the follow-up window passes in silence


async def follow_up_after_a_reply(rig: Rig) -> None:
    await follow_up(rig)
    assert rig.of(AudioStarted)


async def follow_up_after_nothing_to_say(rig: Rig) -> None:
    rig.llm.replies = [""]
    await follow_up(rig)
    assert rig.speaker.sounded == []


async def muted_while_listening(rig: Rig) -> None:
    await rig.tick(WAKE)
    await rig.until_state("listening")
    await rig.ticks(2, SPEECH)
    rig.assistant.set_muted(True)
    assert rig.assistant.state == "idle"
    await rig.tick(WAKE)
    assert rig.assistant.state == "idle", "a muted microphone hears no wake word"


async def a_ring_stopped_by_the_wake_word(rig: Rig) -> None:
    assert rig.skills is not None
    rig.skills.ring_at = rig.clock.now()
    await until(rig, "listening")  # it rings: the loop listens for "stop" without a wake word
    assert rig.of(Ringing) and rig.skills.ringing
    await rig.tick(WAKE)
    assert not rig.skills.ringing, "the wake word stops the ringing"
    await until(rig, "idle")  # and listens for a request, which does not come


SCENARIOS: dict[str, tuple[Callable[[Rig], Awaitable[None]], Pairs]] = {
    "nobody speaks": (nobody_speaks, [(IDLE, Trigger.WAKE), (LISTENING, Trigger.NO_SPEECH)]),
    "a reply": (
        a_reply,
        [
            (IDLE, Trigger.WAKE),
            (LISTENING, Trigger.END_OF_SPEECH),
            (THINKING, Trigger.REPLY_STARTED),
            (SPEAKING, Trigger.REPLY_DONE),
        ],
    ),
    "barge-in while speaking": (
        barge_in_while_speaking,
        [
            (IDLE, Trigger.WAKE),
            (LISTENING, Trigger.END_OF_SPEECH),
            (THINKING, Trigger.REPLY_STARTED),
            (SPEAKING, Trigger.WAKE),
        ],
    ),
    "barge-in while thinking": (
        barge_in_while_thinking,
        [(IDLE, Trigger.WAKE), (LISTENING, Trigger.END_OF_SPEECH), (THINKING, Trigger.WAKE)],
    ),
    "nothing to say": (
        nothing_to_say,
        [(IDLE, Trigger.WAKE), (LISTENING, Trigger.END_OF_SPEECH), (THINKING, Trigger.REPLY_DONE)],
    ),
    "follow-up after a reply": (
        follow_up_after_a_reply,
        [
            (IDLE, Trigger.WAKE),
            (LISTENING, Trigger.END_OF_SPEECH),
            (THINKING, Trigger.REPLY_STARTED),
            (SPEAKING, Trigger.FOLLOW_UP),
            (LISTENING, Trigger.NO_SPEECH),
        ],
    ),
    "follow-up after nothing to say": (
        follow_up_after_nothing_to_say,
        [
            (IDLE, Trigger.WAKE),
            (LISTENING, Trigger.END_OF_SPEECH),
            (THINKING, Trigger.FOLLOW_UP),
            (LISTENING, Trigger.NO_SPEECH),
        ],
    ),
    "muted while listening": (muted_while_listening, [(IDLE, Trigger.WAKE), (LISTENING, Trigger.NO_SPEECH)]),
    "a ring stopped by the wake word": (
        a_ring_stopped_by_the_wake_word,
        [(IDLE, Trigger.RING), (LISTENING, Trigger.WAKE), (LISTENING, Trigger.NO_SPEECH)],
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_the_loop_fires_these_transitions(name: str, fired: Pairs) -> None:
    scenario, expected = SCENARIOS[name]
    async with Rig(
        stt=["What is the capital of France?"], replies=["Paris, on the Seine."], skills=FakeSkills()
    ) as rig:
        await scenario(rig)
        assert fired == expected
        # Each change is published once, from the state the loop was in.
        changes = [(e.previous, e.state) for e in rig.of(StateChanged)][1:]
        moves = [(state.value, TRANSITIONS[(state, trigger)].value) for state, trigger in expected]
        assert changes == [(was, now) for was, now in moves if was != now]


def test_the_scenarios_cover_every_row_of_the_table() -> None:
    covered = {pair for _, pairs in SCENARIOS.values() for pair in pairs}
    assert covered == set(TRANSITIONS), "a row no scenario fires is one the loop cannot reach (or is untested)"


def test_pairs_outside_the_table_mean_nothing() -> None:
    for state in State:
        for trigger in Trigger:
            assert (next_state(state, trigger) is None) == ((state, trigger) not in TRANSITIONS)
