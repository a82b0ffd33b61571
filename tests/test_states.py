"""The transition table, over every (state, trigger) pair."""

from __future__ import annotations

import itertools

import pytest

from assistant.core.states import TRANSITIONS, State, Trigger, next_state

EXPECTED = {
    (State.IDLE, Trigger.WAKE): State.LISTENING,
    (State.IDLE, Trigger.RING): State.LISTENING,
    (State.LISTENING, Trigger.WAKE): State.LISTENING,
    (State.LISTENING, Trigger.END_OF_SPEECH): State.THINKING,
    (State.LISTENING, Trigger.NO_SPEECH): State.IDLE,
    (State.THINKING, Trigger.WAKE): State.LISTENING,
    (State.THINKING, Trigger.REPLY_STARTED): State.SPEAKING,
    (State.THINKING, Trigger.REPLY_DONE): State.IDLE,
    (State.THINKING, Trigger.NO_SPEECH): State.IDLE,
    (State.THINKING, Trigger.FOLLOW_UP): State.LISTENING,
    (State.SPEAKING, Trigger.WAKE): State.LISTENING,
    (State.SPEAKING, Trigger.REPLY_DONE): State.IDLE,
    (State.SPEAKING, Trigger.FOLLOW_UP): State.LISTENING,
}


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(State, Trigger)))
def test_every_pair(state: State, trigger: Trigger) -> None:
    assert next_state(state, trigger) == EXPECTED.get((state, trigger))


def test_table_is_exactly_the_expected_one() -> None:
    assert TRANSITIONS == EXPECTED


def test_every_state_is_reachable_and_can_get_back_to_idle() -> None:
    reachable = {State.IDLE}
    frontier = [State.IDLE]
    while frontier:
        state = frontier.pop()
        for trigger in Trigger:
            nxt = next_state(state, trigger)
            if nxt is not None and nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(State)
    for state in State:
        assert any(next_state(state, t) in (State.IDLE, State.LISTENING) for t in Trigger)
