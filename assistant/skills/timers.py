"""Timers and alarms: pure bookkeeping on an injected clock.

Timers run on audio time (`now`, seconds, passed in by the caller); alarms
are at a time of day, so they are kept as calendar instants and checked
against the injected calendar source. For a restart both are written as
calendar instants (`to_state`) and read back against the new audio clock
(`from_state`), which also reports what fell due while the device was down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from assistant.skills.spoken import BadValue, ClockTime, Day, say_clock, say_duration, timer_label

logger = logging.getLogger(__name__)

Calendar = Callable[[], datetime]  # the calendar time now, timezone-aware
Kind = Literal["timer", "alarm"]
STATE_VERSION = 1


@dataclass(frozen=True)
class Timer:
    """A countdown: running (`due` in audio time) or paused (`left_s`)."""

    id: int
    length_s: float
    name: str | None = None
    due: float | None = None
    left_s: float | None = None

    @property
    def label(self) -> str:
        return f"{self.name} timer" if self.name else f"{timer_label(self.length_s)} timer"

    def remaining(self, now: float) -> float:
        if self.due is None:
            return self.left_s or 0.0
        return max(0.0, self.due - now)


@dataclass(frozen=True)
class Alarm:
    """An alarm at a calendar instant (`at`, epoch seconds)."""

    id: int
    at: float


@dataclass(frozen=True)
class Ringing:
    """Something that fell due: what to say, and whether it fell due while the device was off."""

    id: int
    kind: Kind
    text: str
    late: bool = False


@dataclass
class _Ring:
    ringing: Ringing
    next_at: float
    until: float


@dataclass
class TimerBook:
    """The device's timers and alarms; every method takes audio time `now`."""

    calendar: Calendar
    clock: Literal["12h", "24h"] = "12h"
    ring_s: float = 6.0
    ring_timeout_s: float = 300.0
    max_items: int = 10
    timers: dict[int, Timer] = field(default_factory=dict)
    alarms: dict[int, Alarm] = field(default_factory=dict)
    changed: bool = False
    _rings: list[_Ring] = field(default_factory=list)
    _next_id: int = 1

    # -- timers ------------------------------------------------------------------------------

    def _new_id(self) -> int:
        if len(self.timers) + len(self.alarms) >= self.max_items:
            raise BadValue(f"You already have {self.max_items} timers and alarms. Cancel one first.")
        self._next_id += 1
        return self._next_id - 1

    def start(self, now: float, seconds: float, name: str | None = None) -> Timer:
        """Start a timer of `seconds`; a name already in use is refused."""
        if name and any(t.name == name for t in self.timers.values()):
            raise BadValue(f"You already have a {name} timer.")
        timer = Timer(self._new_id(), seconds, name or None, due=now + seconds)
        self.timers[timer.id] = timer
        self.changed = True
        logger.info("skills: timer %d started (%s, %.0f s)", timer.id, timer.label, seconds)
        return timer

    def select(self, *, name: str | None = None, length_s: float | None = None, paused: bool | None = None) -> Timer:
        """The one timer meant by a name, a length or (with neither) the only one; BadValue otherwise."""
        candidates = list(self.timers.values())
        if name:
            candidates = [t for t in candidates if t.name == name]
            if not candidates:
                raise BadValue(f"You don't have {article(name + ' timer')}.")
        if length_s is not None:
            candidates = [t for t in candidates if round(t.length_s) == round(length_s)]
            if not candidates:
                raise BadValue(f"You don't have {article(timer_label(length_s) + ' timer')}.")
        if not candidates:
            raise BadValue("You don't have any timers.")
        if paused is not None:
            fitting = [t for t in candidates if (t.due is None) == paused]
            if not fitting:
                state = "paused" if paused else "running"
                if len(candidates) == 1:
                    raise BadValue(f"Your {candidates[0].label} is not {state}.")
                raise BadValue(f"None of your timers is {state}.")
            candidates = fitting
        if len(candidates) > 1:
            raise BadValue(f"Which one? You have {_names(candidates)}.")
        return candidates[0]

    def cancel(self, timer: Timer) -> None:
        self.timers.pop(timer.id, None)
        self.changed = True
        logger.info("skills: timer %d cancelled", timer.id)

    def cancel_all(self) -> int:
        count = len(self.timers)
        self.timers.clear()
        self.changed = True
        return count

    def pause(self, timer: Timer, now: float) -> Timer:
        paused = replace(timer, due=None, left_s=timer.remaining(now))
        self.timers[timer.id] = paused
        self.changed = True
        return paused

    def resume(self, timer: Timer, now: float) -> Timer:
        running = replace(timer, due=now + timer.remaining(now), left_s=None)
        self.timers[timer.id] = running
        self.changed = True
        return running

    def adjust(self, timer: Timer, now: float, delta_s: float) -> Timer:
        """Add (or with a negative delta take) time; a timer cannot be taken below one second."""
        left = timer.remaining(now) + delta_s
        if left < 1:
            raise BadValue(f"Your {timer.label} has only {say_duration(timer.remaining(now))} left.")
        adjusted = replace(timer, left_s=left) if timer.due is None else replace(timer, due=now + left)
        self.timers[timer.id] = adjusted
        self.changed = True
        return adjusted

    # -- alarms ------------------------------------------------------------------------------

    def set_alarm(self, when: ClockTime, day: Day | None = None) -> Alarm:
        """The next matching time of day ("today": must still be ahead; "tomorrow": that day)."""
        current = self.calendar()
        today = current.date()
        dates = {"today": [today], "tomorrow": [today + timedelta(days=1)]}.get(day or "")
        dates = dates or [today, today + timedelta(days=1)]
        tz = current.tzinfo
        options = sorted(
            moment
            for date in dates
            for hour in when.hours24()
            if (moment := datetime(date.year, date.month, date.day, hour, when.minute, tzinfo=tz)) > current
        )
        if not options:
            raise BadValue(f"It's already past {say_clock((when.hours24()[-1], when.minute), self.clock)} today.")
        return self._add_alarm(options[0])

    def set_alarm_in(self, seconds: float) -> Alarm:
        """An alarm `seconds` from now on the calendar ("wake me up in half an hour")."""
        return self._add_alarm(self.calendar() + timedelta(seconds=seconds))

    def _add_alarm(self, moment: datetime) -> Alarm:
        alarm = Alarm(self._new_id(), moment.timestamp())
        self.alarms[alarm.id] = alarm
        self.changed = True
        logger.info("skills: alarm %d set for %s", alarm.id, moment.isoformat())
        return alarm

    def cancel_alarms(self, when: ClockTime | None = None) -> list[Alarm]:
        """Cancel the alarms at that time of day (all of them without one)."""
        gone = [a for a in self.alarms.values() if when is None or self._alarm_is_at(a, when)]
        for alarm in gone:
            del self.alarms[alarm.id]
        self.changed = self.changed or bool(gone)
        return gone

    def _alarm_is_at(self, alarm: Alarm, when: ClockTime) -> bool:
        moment = datetime.fromtimestamp(alarm.at, self.calendar().tzinfo)
        return moment.minute == when.minute and moment.hour in when.hours24()

    def upcoming_alarms(self) -> list[Alarm]:
        return sorted(self.alarms.values(), key=lambda a: a.at)

    def when(self, alarm: Alarm) -> str:
        """ "7 AM today", "6:30 AM tomorrow", "7 AM on Friday": relative to the calendar now."""
        current = self.calendar()
        moment = datetime.fromtimestamp(alarm.at, current.tzinfo)
        days = (moment.date() - current.date()).days
        day = {0: "today", 1: "tomorrow", -1: "yesterday"}.get(days, f"on {moment:%A}")
        return f"{say_clock(moment, self.clock)} {day}"

    # -- ringing -----------------------------------------------------------------------------

    def due(self, now: float) -> list[Ringing]:
        """What rings now: newly due timers and alarms, and repeats of those not yet stopped."""
        for timer in [t for t in self.timers.values() if t.due is not None and t.due <= now]:
            del self.timers[timer.id]
            self.changed = True
            logger.info("skills: timer %d went off", timer.id)
            self._ring(Ringing(timer.id, "timer", f"Your {timer.label} is done."), now)
        epoch = self.calendar().timestamp()
        for alarm in [a for a in self.alarms.values() if a.at <= epoch]:
            del self.alarms[alarm.id]
            self.changed = True
            logger.info("skills: alarm %d went off", alarm.id)
            spoken = say_clock(datetime.fromtimestamp(alarm.at, self.calendar().tzinfo), self.clock)
            self._ring(Ringing(alarm.id, "alarm", f"It's {spoken}. This is your alarm."), now)
        out = []
        for ring in self._rings:
            if ring.next_at <= now:
                out.append(ring.ringing)
                ring.next_at = now + self.ring_s
        self._rings = [r for r in self._rings if r.next_at <= r.until]
        return out

    def _ring(self, ringing: Ringing, now: float, *, once: bool = False) -> None:
        self._rings.append(_Ring(ringing, now, now if once else now + self.ring_timeout_s))

    @property
    def ringing(self) -> bool:
        return bool(self._rings)

    def stop_ringing(self) -> bool:
        """Silence everything that is ringing; False when nothing was."""
        was = bool(self._rings)
        self._rings.clear()
        return was

    # -- persistence -------------------------------------------------------------------------

    def to_state(self, now: float) -> dict[str, Any]:
        """A JSON-able snapshot: running timers as calendar instants, paused ones as time left."""
        epoch = self.calendar().timestamp()
        timers = [
            {"id": t.id, "length_s": t.length_s, "name": t.name}
            | ({"due_at": epoch + (t.due - now)} if t.due is not None else {"left_s": t.left_s})
            for t in self.timers.values()
        ]
        alarms = [{"id": a.id, "at": a.at} for a in self.alarms.values()]
        return {"version": STATE_VERSION, "next_id": self._next_id, "timers": timers, "alarms": alarms}

    def load_state(self, state: dict[str, Any], now: float) -> None:
        """Take timers and alarms from `to_state` output; those already past ring once, marked late."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {state.get('version')!r}")
        epoch = self.calendar().timestamp()
        self._next_id = int(state.get("next_id", 1))
        for item in state.get("timers", []):
            timer = Timer(int(item["id"]), float(item["length_s"]), item.get("name") or None)
            if "due_at" in item:
                left = float(item["due_at"]) - epoch
                if left <= 0:
                    text = f"While I was off, your {timer.label} went off."
                    self._ring(Ringing(timer.id, "timer", text, late=True), now, once=True)
                    self.changed = True
                    continue
                timer = replace(timer, due=now + left)
            else:
                timer = replace(timer, left_s=float(item["left_s"]))
            self.timers[timer.id] = timer
        for item in state.get("alarms", []):
            alarm = Alarm(int(item["id"]), float(item["at"]))
            if alarm.at <= epoch:
                text = f"While I was off, your alarm for {self.when(alarm)} went off."
                self._ring(Ringing(alarm.id, "alarm", text, late=True), now, once=True)
                self.changed = True
                continue
            self.alarms[alarm.id] = alarm
        self._next_id = max([self._next_id, *(i + 1 for i in self.timers), *(i + 1 for i in self.alarms)])


def article(label: str) -> str:
    """ "a 10 minute timer", "an 8 minute timer", "an egg timer"."""
    vowel = label[:1] in "aeiou8" or label.split(" ", 1)[0] in ("11", "18")
    return f"{'an' if vowel else 'a'} {label}"


def _names(timers: list[Timer]) -> str:
    labels = [article(t.label) for t in timers]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
