"""The turn states and the one table of transitions between them."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


class Trigger(StrEnum):
    WAKE = "wake"
    """The wake word fired (also barge-in while thinking or speaking; ignored while listening)."""
    END_OF_SPEECH = "end_of_speech"
    """The user stopped speaking; the utterance goes to speech-to-text."""
    NO_SPEECH = "no_speech"
    """Listening timed out without speech, or the microphone was muted while listening."""
    REPLY_STARTED = "reply_started"
    """The first reply sample (or an apology) reached the speaker."""
    REPLY_DONE = "reply_done"
    """The turn finished (spoken, failed quietly, or nothing to say)."""
    FOLLOW_UP = "follow_up"
    """The turn finished and the follow-up window listens without a wake word."""
    RING = "ring"
    """A timer or alarm rings: a window listens for "stop" without the wake word."""


TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (State.IDLE, Trigger.WAKE): State.LISTENING,
    (State.IDLE, Trigger.RING): State.LISTENING,
    (State.LISTENING, Trigger.WAKE): State.LISTENING,  # only while something rings: the wake word stops it
    (State.LISTENING, Trigger.END_OF_SPEECH): State.THINKING,
    (State.LISTENING, Trigger.NO_SPEECH): State.IDLE,
    (State.THINKING, Trigger.WAKE): State.LISTENING,
    (State.THINKING, Trigger.REPLY_STARTED): State.SPEAKING,
    (State.THINKING, Trigger.REPLY_DONE): State.IDLE,
    (State.THINKING, Trigger.FOLLOW_UP): State.LISTENING,
    (State.SPEAKING, Trigger.WAKE): State.LISTENING,
    (State.SPEAKING, Trigger.REPLY_DONE): State.IDLE,
    (State.SPEAKING, Trigger.FOLLOW_UP): State.LISTENING,
}


def next_state(state: State, trigger: Trigger) -> State | None:
    """The state after `trigger`, or None when the trigger means nothing there."""
    return TRANSITIONS.get((state, trigger))
