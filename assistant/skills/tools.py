"""The skills as LLM tools: JSON-schema definitions in Ollama's `tools` format, and their calls.

A tool call becomes the same (intent, slots) a spoken request would, and runs
through the same handlers, so the LLM and the voice path cannot drift apart.
Bad arguments come back as an error string for the model, never as an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.skills.spoken import BadValue, parse_clock


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(_Args):
    pass


class TimerRef(_Args):
    name: str | None = Field(default=None, min_length=1, max_length=60)


class StartTimer(_Args):
    duration_s: float = Field(gt=0)
    name: str | None = Field(default=None, min_length=1, max_length=60)


class CancelTimer(TimerRef):
    all: bool = False


class AdjustTimer(TimerRef):
    seconds: float


class SetAlarm(_Args):
    time: str = Field(min_length=1, max_length=40)
    day: Literal["today", "tomorrow"] | None = None


class CancelAlarm(_Args):
    time: str | None = Field(default=None, min_length=1, max_length=40)
    all: bool = False


class SetVolume(_Args):
    level_pct: int = Field(ge=0, le=100)


class ChangeVolume(_Args):
    direction: Literal["up", "down"]


_NAME = {"type": "string", "description": "The timer's name, e.g. pizza; omit for the only timer."}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[_Args]
    properties: dict[str, Any]
    required: tuple[str, ...] = ()

    def definition(self) -> dict[str, Any]:
        """Ollama's /api/chat `tools` entry."""
        parameters = {"type": "object", "properties": self.properties, "required": list(self.required)}
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": parameters},
        }


TOOLS = (
    Tool("get_current_time", "The current time of day and date where the device is.", NoArgs, {}),
    Tool(
        "start_timer",
        "Start a countdown timer on the device; it rings when done.",
        StartTimer,
        {
            "duration_s": {"type": "number", "description": "Length in seconds, e.g. 600 for ten minutes."},
            "name": _NAME,
        },
        ("duration_s",),
    ),
    Tool("timer_status", "How much time is left on the timers.", TimerRef, {"name": _NAME}),
    Tool(
        "cancel_timer",
        "Cancel a timer, or all of them.",
        CancelTimer,
        {"name": _NAME, "all": {"type": "boolean", "description": "Cancel every timer."}},
    ),
    Tool("pause_timer", "Pause a running timer.", TimerRef, {"name": _NAME}),
    Tool("resume_timer", "Resume a paused timer.", TimerRef, {"name": _NAME}),
    Tool(
        "add_timer_time",
        "Add time to a timer (a negative number takes time off).",
        AdjustTimer,
        {"seconds": {"type": "number", "description": "Seconds to add, e.g. 300."}, "name": _NAME},
        ("seconds",),
    ),
    Tool(
        "set_alarm",
        "Set an alarm at a time of day.",
        SetAlarm,
        {
            "time": {"type": "string", "description": "Time of day, 24-hour HH:MM, e.g. 07:30."},
            "day": {"type": "string", "enum": ["today", "tomorrow"], "description": "Omit for the next such time."},
        },
        ("time",),
    ),
    Tool(
        "cancel_alarm",
        "Cancel an alarm, or all of them.",
        CancelAlarm,
        {
            "time": {"type": "string", "description": "The alarm's time of day, HH:MM; omit for the only alarm."},
            "all": {"type": "boolean", "description": "Cancel every alarm."},
        },
    ),
    Tool("list_alarms", "The alarms that are set.", NoArgs, {}),
    Tool(
        "set_volume",
        "Set the speaker volume.",
        SetVolume,
        {"level_pct": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Volume in percent."}},
        ("level_pct",),
    ),
    Tool(
        "change_volume",
        "Make the speaker louder or quieter by one step.",
        ChangeVolume,
        {"direction": {"type": "string", "enum": ["up", "down"]}},
        ("direction",),
    ),
)
BY_NAME = {tool.name: tool for tool in TOOLS}


def _clock_slots(text: str) -> dict[str, Any]:
    when = parse_clock(text)
    slots: dict[str, Any] = {"hour": when.hour, "minute": when.minute}
    if when.meridiem:
        slots["meridiem"] = when.meridiem
    return slots


def _timer_slots(args: TimerRef | StartTimer) -> dict[str, Any]:
    return {"name": args.name.strip().lower()} if args.name else {}


def to_request(name: str, arguments: Any) -> list[tuple[str, dict[str, Any]]]:
    """The (intent, slots) pairs a tool call stands for; ValueError with a readable message otherwise."""
    tool = BY_NAME.get(name)
    if tool is None:
        raise ValueError(f"unknown tool {name!r}; the tools are: {', '.join(BY_NAME)}")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ValueError(f"{name}: arguments must be an object, not {type(arguments).__name__}")
    try:
        args = tool.args.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
        )
        raise ValueError(f"{name}: {problems}") from None
    if isinstance(args, StartTimer):
        return [("HassStartTimer", {"duration_s": args.duration_s, **_timer_slots(args)})]
    if isinstance(args, CancelTimer):
        return [("HassCancelAllTimers", {})] if args.all else [("HassCancelTimer", _timer_slots(args))]
    if isinstance(args, AdjustTimer):
        intent = "HassIncreaseTimer" if args.seconds >= 0 else "HassDecreaseTimer"
        return [(intent, {"duration_s": abs(args.seconds), **_timer_slots(args)})]
    if isinstance(args, TimerRef):
        intent = {"timer_status": "HassTimerStatus", "pause_timer": "HassPauseTimer"}.get(name, "HassUnpauseTimer")
        return [(intent, _timer_slots(args))]
    try:
        if isinstance(args, SetAlarm):
            return [("SkillSetAlarm", {**_clock_slots(args.time), **({"day": args.day} if args.day else {})})]
        if isinstance(args, CancelAlarm):
            slots = _clock_slots(args.time) if args.time else {}
            return [("SkillCancelAlarm", {**slots, **({"all": True} if args.all else {})})]
    except BadValue as exc:
        raise ValueError(f"{name}: time {getattr(args, 'time', '')!r}: {exc}") from None
    if isinstance(args, SetVolume):
        return [("HassSetVolume", {"level_pct": args.level_pct})]
    if isinstance(args, ChangeVolume):
        return [("HassSetVolumeRelative", {"direction": args.direction})]
    if name == "list_alarms":
        return [("SkillAlarmStatus", {})]
    return [("HassGetCurrentTime", {}), ("HassGetCurrentDate", {})]
