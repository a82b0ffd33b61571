"""The device's own skills behind one small interface for the turn loop.

    skills = Skills.from_config(config.skills, config.state_path, now=clock_now)
    reply = skills.handle(transcript, now)      # None: not ours, ask the LLM
    for ring in skills.due(now): ...            # once per audio block
    skills.remember(spoken_reply_text)          # what "repeat that" repeats
    skills.tools(); skills.call_tool(name, arguments, now)   # the same skills for the LLM
    skills.gain                                 # the speaker's software gain, 0.0-1.0

`now` is audio time in seconds (any monotonic origin); the calendar time
(time of day, alarms, restarts) comes only from the injected `calendar`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from assistant.config import SkillsConfig
from assistant.skills import handlers
from assistant.skills.handlers import Context, Volume
from assistant.skills.matcher import IntentMatcher
from assistant.skills.replies import Action, SkillReply
from assistant.skills.store import StateFile
from assistant.skills.timers import Calendar, Ringing, TimerBook
from assistant.skills.tools import TOOLS, to_request

logger = logging.getLogger(__name__)


def system_calendar(timezone: str | None = None) -> Calendar:
    """The calendar source for the device: the wall clock in `timezone` (None: the system's)."""
    zone = ZoneInfo(timezone) if timezone else None

    def now() -> datetime:
        return datetime.now(zone) if zone else datetime.now().astimezone()

    return now


class Skills:
    """Matches requests to the device's own intents and answers them without the LLM."""

    def __init__(
        self,
        settings: SkillsConfig,
        state: StateFile | None,
        *,
        calendar: Calendar,
        now: float = 0.0,
        matcher: IntentMatcher | None = None,
    ) -> None:
        self.settings = settings
        self._state = state
        self._ctx = Context(
            self._new_book(calendar),
            calendar,
            Volume(),
            clock=settings.clock,
            volume_step_pct=settings.volume_step_pct,
            max_timer_s=settings.max_timer_s,
        )
        self._matcher: IntentMatcher | None = None
        if settings.enabled:
            self._matcher = matcher or IntentMatcher(settings.strip_words, max_timer_s=settings.max_timer_s)
            self._restore(now)

    @classmethod
    def from_config(cls, settings: SkillsConfig, state_dir: Path, *, now: float = 0.0) -> Skills:
        """The device's skills: state in `state_dir`, the system clock in the configured zone."""
        return cls(settings, StateFile.in_dir(state_dir), calendar=system_calendar(settings.timezone), now=now)

    # -- the loop's interface -----------------------------------------------------------------

    @property
    def gain(self) -> float:
        """The speaker's software gain (0.0 when muted)."""
        return self._ctx.volume.gain

    @property
    def ringing(self) -> bool:
        """Whether a timer or alarm is ringing (until "stop" or its time-out)."""
        return self._ctx.book.ringing

    def handle(self, text: str, now: float) -> SkillReply | None:
        """Answer `text` if it is one of the device's own requests; None sends it to the LLM."""
        if self._matcher is None:
            return None
        match = self._matcher.match(text)
        if match is None:
            return None
        reply = handlers.run(self._ctx, match.intent, match.slots, now)
        logger.info("skills: %s %s -> %r (%s)", match.intent, match.slots, reply.text, reply.action)
        if reply.text and reply.action not in (Action.REPEAT, Action.STOP):
            self._ctx.last_reply = reply.text
        self._save(now)
        return reply

    def due(self, now: float) -> list[Ringing]:
        """What rings now (call once per audio block): due timers and alarms, and repeats."""
        if self._matcher is None:
            return []
        ringing = self._ctx.book.due(now)
        self._save(now)
        return ringing

    def stop_ringing(self) -> bool:
        """Silence what rings (the wake word does this); False when nothing did."""
        return self._ctx.book.stop_ringing()

    def remember(self, text: str) -> None:
        """Record a reply the user heard (from the LLM too): what "repeat that" says."""
        if text.strip():
            self._ctx.last_reply = text.strip()

    def tools(self) -> list[dict[str, Any]]:
        """Ollama `tools` definitions for time, timers, alarms and volume."""
        return [tool.definition() for tool in TOOLS] if self._matcher is not None else []

    def call_tool(self, name: str, arguments: Any, now: float) -> str:
        """Run one tool call; bad arguments or an impossible request come back as text, never raise."""
        if self._matcher is None:
            return "error: the device's skills are turned off"
        try:
            requests = to_request(name, arguments)
        except ValueError as exc:
            return f"error: {exc}"
        answers = [handlers.run(self._ctx, intent, slots, now) for intent, slots in requests]
        self._save(now)
        text = " ".join(answer.text for answer in answers if answer.text)
        logger.info("skills: tool %s %s -> %r", name, arguments, text)
        return text or "done"

    # -- persistence --------------------------------------------------------------------------

    def _new_book(self, calendar: Calendar) -> TimerBook:
        settings = self.settings
        return TimerBook(
            calendar,
            clock=settings.clock,
            ring_s=settings.ring_s,
            ring_timeout_s=settings.ring_timeout_s,
            max_items=settings.max_timers,
        )

    def _restore(self, now: float) -> None:
        if self._state is None:
            return
        data = self._state.load()
        if data is None:
            return
        try:
            self._ctx.book.load_state(data, now)
            volume = data.get("volume", {})
            level = int(volume.get("level_pct", 100))
            if not 0 <= level <= 100:
                raise ValueError(f"volume.level_pct {level} is outside 0-100")
            self._ctx.volume = Volume(level, bool(volume.get("muted", False)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._state.set_aside(f"does not hold valid skills state ({exc})")
            self._ctx.book = self._new_book(self._ctx.calendar)
            self._ctx.volume = Volume()
            return
        logger.info(
            "skills: restored %d timer(s), %d alarm(s), volume %d%%",
            len(self._ctx.book.timers),
            len(self._ctx.book.alarms),
            self._ctx.volume.level_pct,
        )
        self._save(now)

    def _save(self, now: float) -> None:
        ctx = self._ctx
        if not (ctx.book.changed or ctx.volume_changed) or self._state is None:
            return
        data = ctx.book.to_state(now)
        data["volume"] = {"level_pct": ctx.volume.level_pct, "muted": ctx.volume.muted}
        self._state.save(data)
        ctx.book.changed = ctx.volume_changed = False
