"""One handler per intent: canonical slots in, a short spoken sentence (and an action) out.

Handlers are pure apart from the injected calendar: they change the
`Context` (timers, alarms, volume) and return a `SkillReply`. A value the user
cannot mean raises `BadValue`, whose message is said instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.skills.replies import Action, SkillReply
from assistant.skills.spoken import BadValue, Clock, ClockTime, say_clock, say_date, say_duration
from assistant.skills.timers import Calendar, Timer, TimerBook

ASK_DURATION = "For how long? Say, for example, set a timer for ten minutes."
ASK_ALARM = "For what time? Say, for example, wake me up at seven."


@dataclass
class Volume:
    """The speaker's software gain as a level in percent, and the mute switch."""

    level_pct: int = 100
    muted: bool = False

    @property
    def gain(self) -> float:
        return 0.0 if self.muted else self.level_pct / 100


@dataclass
class Context:
    """Everything the handlers read and change."""

    book: TimerBook
    calendar: Calendar
    volume: Volume
    clock: Clock = "12h"
    volume_step_pct: int = 10
    max_timer_s: float = 86400.0
    last_reply: str | None = None
    volume_changed: bool = False


Handler = Callable[[Context, dict[str, Any], float], "SkillReply | str"]


def _timer(ctx: Context, slots: dict[str, Any], *, paused: bool | None = None) -> Timer:
    return ctx.book.select(name=slots.get("name"), length_s=slots.get("start_s"), paused=paused)


def _left(timer: Timer, now: float) -> str:
    left = say_duration(timer.remaining(now))
    if timer.due is None:
        return f"Your {timer.label} is paused with {left} left."
    return f"Your {timer.label} has {left} left."


def current_time(ctx: Context, slots: dict[str, Any], now: float) -> str:
    return f"It's {say_clock(ctx.calendar(), ctx.clock)}."


def current_date(ctx: Context, slots: dict[str, Any], now: float) -> str:
    return f"Today is {say_date(ctx.calendar().date())}."


def start_timer(ctx: Context, slots: dict[str, Any], now: float) -> str:
    if "duration_s" not in slots:
        return ASK_DURATION
    seconds = float(slots["duration_s"])
    if seconds < 1:
        raise BadValue("A timer needs at least one second.")
    if seconds > ctx.max_timer_s:
        raise BadValue(f"That's too long. The longest timer is {say_duration(ctx.max_timer_s)}.")
    timer = ctx.book.start(now, seconds, slots.get("name"))
    if timer.name:
        return f"{timer.name.capitalize()} timer set for {say_duration(seconds)}."
    return f"Timer set for {say_duration(seconds)}."


def cancel_timer(ctx: Context, slots: dict[str, Any], now: float) -> SkillReply | str:
    if not slots and not ctx.book.timers and ctx.book.stop_ringing():
        return SkillReply("", "HassCancelTimer", action=Action.STOP)  # "stop the timer" while it rings
    timer = _timer(ctx, slots)
    ctx.book.cancel(timer)
    return f"Cancelled your {timer.label}."


def cancel_all_timers(ctx: Context, slots: dict[str, Any], now: float) -> str:
    count = ctx.book.cancel_all()
    if count == 0:
        return "You don't have any timers."
    return "Cancelled your timer." if count == 1 else f"Cancelled all {count} timers."


def timer_status(ctx: Context, slots: dict[str, Any], now: float) -> str:
    if slots.get("name") or "start_s" in slots or len(ctx.book.timers) <= 1:
        return _left(_timer(ctx, slots), now)
    timers = sorted(ctx.book.timers.values(), key=lambda t: t.remaining(now))
    parts = [
        f"the {t.label} has {say_duration(t.remaining(now))} left" + (" and is paused" if t.due is None else "")
        for t in timers
    ]
    return f"You have {len(timers)} timers: " + ", ".join(parts[:-1]) + f" and {parts[-1]}."


def pause_timer(ctx: Context, slots: dict[str, Any], now: float) -> str:
    timer = ctx.book.pause(_timer(ctx, slots, paused=False), now)
    return f"Paused. {_left(timer, now)}"


def resume_timer(ctx: Context, slots: dict[str, Any], now: float) -> str:
    timer = ctx.book.resume(_timer(ctx, slots, paused=True), now)
    return f"Resumed. {_left(timer, now)}"


def _adjust(ctx: Context, slots: dict[str, Any], now: float, sign: int) -> str:
    if "duration_s" not in slots:
        return "By how much? Say, for example, add five minutes to the timer."
    delta = float(slots["duration_s"])
    timer = ctx.book.adjust(_timer(ctx, slots), now, sign * delta)
    verb = "Added" if sign > 0 else "Took off"
    return f"{verb} {say_duration(delta)}. {_left(timer, now)}"


def increase_timer(ctx: Context, slots: dict[str, Any], now: float) -> str:
    return _adjust(ctx, slots, now, +1)


def decrease_timer(ctx: Context, slots: dict[str, Any], now: float) -> str:
    return _adjust(ctx, slots, now, -1)


def _clock_time(slots: dict[str, Any]) -> ClockTime | None:
    if "hour" not in slots:
        return None
    return ClockTime(int(slots["hour"]), int(slots.get("minute", 0)), slots.get("meridiem"))


def set_alarm(ctx: Context, slots: dict[str, Any], now: float) -> str:
    if "in_s" in slots:  # "wake me up in half an hour"
        alarm = ctx.book.set_alarm_in(float(slots["in_s"]))
        return f"Alarm set for {ctx.book.when(alarm)}, in {say_duration(float(slots['in_s']))}."
    when = _clock_time(slots)
    if when is None:
        return ASK_ALARM
    alarm = ctx.book.set_alarm(when, slots.get("day"))
    return f"Alarm set for {ctx.book.when(alarm)}."


def ask_alarm(ctx: Context, slots: dict[str, Any], now: float) -> str:
    return ASK_ALARM


def cancel_alarm(ctx: Context, slots: dict[str, Any], now: float) -> SkillReply | str:
    when = _clock_time(slots)
    if when is None and not slots.get("all") and ctx.book.stop_ringing():
        return SkillReply("", "SkillCancelAlarm", action=Action.STOP)  # "turn off the alarm" while it rings
    alarms = ctx.book.upcoming_alarms()
    if not alarms:
        return "You don't have any alarms."
    if when is None and not slots.get("all") and len(alarms) > 1:
        listed = " and ".join(ctx.book.when(a) for a in alarms)
        return f"Which one? You have alarms at {listed}. Or say cancel all alarms."
    gone = ctx.book.cancel_alarms(when)
    if not gone and when is not None:
        raise BadValue(f"You don't have an alarm at {say_clock((when.hours24()[0], when.minute), ctx.clock)}.")
    if len(gone) == 1:
        return f"Cancelled your alarm for {ctx.book.when(gone[0])}."
    return f"Cancelled {len(gone)} alarms."


def alarm_status(ctx: Context, slots: dict[str, Any], now: float) -> str:
    alarms = ctx.book.upcoming_alarms()
    if not alarms:
        return "You don't have any alarms."
    listed = [ctx.book.when(a) for a in alarms]
    if len(listed) == 1:
        return f"You have an alarm at {listed[0]}."
    return f"You have {len(listed)} alarms: at " + ", ".join(listed[:-1]) + f" and {listed[-1]}."


def _volume_reply(ctx: Context, intent: str, text: str) -> SkillReply:
    ctx.volume_changed = True
    return SkillReply(text, intent, action=Action.VOLUME, gain=ctx.volume.gain)


def set_volume(ctx: Context, slots: dict[str, Any], now: float) -> SkillReply:
    level = int(slots["level_pct"])
    if not 0 <= level <= 100:
        raise BadValue(f"The volume goes from 0 to 100 percent, not {level}.")
    if level == 0:
        ctx.volume.muted = True
        return _volume_reply(ctx, "HassSetVolume", "")
    ctx.volume.level_pct, ctx.volume.muted = level, False
    return _volume_reply(ctx, "HassSetVolume", f"Volume {level} percent.")


def change_volume(ctx: Context, slots: dict[str, Any], now: float) -> SkillReply:
    step = int(slots.get("step_pct") or ctx.volume_step_pct)
    sign = 1 if slots.get("direction", "up") == "up" else -1
    level = min(100, max(10, ctx.volume.level_pct + sign * step))
    was_muted, ctx.volume.muted = ctx.volume.muted, False
    if level == ctx.volume.level_pct and not was_muted:
        edge = "loudest" if sign > 0 else "quietest"
        return _volume_reply(ctx, "HassSetVolumeRelative", f"That's already the {edge} I go.")
    ctx.volume.level_pct = level
    return _volume_reply(ctx, "HassSetVolumeRelative", f"Volume {level} percent.")


def mute(ctx: Context, slots: dict[str, Any], now: float) -> SkillReply:
    ctx.volume.muted = True
    return _volume_reply(ctx, "HassMediaPlayerMute", "")


def unmute(ctx: Context, slots: dict[str, Any], now: float) -> SkillReply:
    ctx.volume.muted = False
    return _volume_reply(ctx, "HassMediaPlayerUnmute", f"Sound is back on, at {ctx.volume.level_pct} percent.")


def stop(ctx: Context, slots: dict[str, Any], now: float) -> SkillReply:
    ctx.book.stop_ringing()
    return SkillReply("", "SkillStop", action=Action.STOP)


def nevermind(ctx: Context, slots: dict[str, Any], now: float) -> SkillReply:
    return SkillReply("", "HassNevermind", action=Action.STOP)


def repeat(ctx: Context, slots: dict[str, Any], now: float) -> SkillReply | str:
    if not ctx.last_reply:
        return "I haven't said anything yet."
    return SkillReply(ctx.last_reply, "SkillRepeat", action=Action.REPEAT)


HANDLERS: dict[str, Handler] = {
    "HassGetCurrentTime": current_time,
    "HassGetCurrentDate": current_date,
    "HassStartTimer": start_timer,
    "HassCancelTimer": cancel_timer,
    "HassCancelAllTimers": cancel_all_timers,
    "HassTimerStatus": timer_status,
    "HassPauseTimer": pause_timer,
    "HassUnpauseTimer": resume_timer,
    "HassIncreaseTimer": increase_timer,
    "HassDecreaseTimer": decrease_timer,
    "HassSetVolume": set_volume,
    "HassSetVolumeRelative": change_volume,
    "HassMediaPlayerMute": mute,
    "HassMediaPlayerUnmute": unmute,
    "HassNevermind": nevermind,
    "SkillSetAlarm": set_alarm,
    "SkillSetAlarmAsk": ask_alarm,
    "SkillCancelAlarm": cancel_alarm,
    "SkillAlarmStatus": alarm_status,
    "SkillStop": stop,
    "SkillRepeat": repeat,
}


def run(ctx: Context, intent: str, slots: dict[str, Any], now: float) -> SkillReply:
    """Answer one matched request; bad values and unknown timers become a spoken answer."""
    if "invalid" in slots:
        return SkillReply(str(slots.get("problem", "I can't do that.")), intent, slots)
    try:
        answer = HANDLERS[intent](ctx, slots, now)
    except BadValue as exc:
        return SkillReply(str(exc), intent, slots)
    if isinstance(answer, str):
        return SkillReply(answer, intent, slots)
    return SkillReply(answer.text, intent, slots, answer.action, answer.gain)
