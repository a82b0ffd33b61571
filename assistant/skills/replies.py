"""What a skill hands back to the turn loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    """What the loop does besides speaking `text`."""

    SPEAK = "speak"  # just say the text
    STOP = "stop"  # stop speaking and ringing; say nothing more
    REPEAT = "repeat"  # `text` is the last reply, to be said again
    VOLUME = "volume"  # apply `gain` to the speaker path, then say the text (if any)


@dataclass(frozen=True)
class SkillReply:
    """A request the device answered itself: the words to say, and what else to do."""

    text: str
    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    action: Action = Action.SPEAK
    gain: float | None = None  # with Action.VOLUME: the speaker gain 0.0-1.0 from now on
