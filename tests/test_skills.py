"""Skills end to end on a fake clock: handlers, ringing, persistence across restarts, LLM tools."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from assistant.config import SkillsConfig
from assistant.skills import Action, Skills
from assistant.skills.matcher import IntentMatcher
from assistant.skills.store import StateFile
from assistant.skills.tools import TOOLS

BERLIN = ZoneInfo("Europe/Berlin")
EVENING = datetime(2025, 3, 4, 21, 5, tzinfo=BERLIN)  # a Tuesday


class FakeClock:
    """Audio time `now` and a calendar that moves with it from `start`."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = 0.0

    def calendar(self) -> datetime:
        return self.start + timedelta(seconds=self.now)


def make(
    matcher: IntentMatcher, state_dir: Path, start: datetime = EVENING, **settings: object
) -> tuple[Skills, FakeClock]:
    clock = FakeClock(start)
    config = SkillsConfig.model_validate({"ring_s": 5.0, "ring_timeout_s": 60.0, **settings})
    skills = Skills(config, StateFile.in_dir(state_dir), calendar=clock.calendar, matcher=matcher)
    return skills, clock


def say(skills: Skills, clock: FakeClock, text: str, at: float | None = None) -> str:
    if at is not None:
        clock.now = at
    reply = skills.handle(text, clock.now)
    assert reply is not None, f"{text!r} was not matched"
    return reply.text


# (audio time, request, expected reply) in order, on one device
SCRIPTS = {
    "time and date": [
        (0, "What time is it?", "It's 9 oh 5 PM."),
        (0, "What's the date today?", "Today is Tuesday, March 4th, 2025."),
        (3300, "what's the time", "It's 10 PM."),
    ],
    "several timers": [
        (0, "Set a timer for 10 minutes.", "Timer set for 10 minutes."),
        (0, "Set a pizza timer for 5 minutes.", "Pizza timer set for 5 minutes."),
        (
            60,
            "How much time is left?",
            "You have 2 timers: the pizza timer has 4 minutes left and the 10 minute timer has 9 minutes left.",
        ),
        (62, "Cancel the timer.", "Which one? You have a 10 minute timer and a pizza timer."),
        (63, "Cancel the 10 minute timer.", "Cancelled your 10 minute timer."),
        (64, "How much time is left?", "Your pizza timer has 3 minutes and 56 seconds left."),
        (65, "Cancel the egg timer.", "You don't have an egg timer."),
        (66, "Set a pizza timer for 3 minutes.", "You already have a pizza timer."),
        (67, "Cancel all timers.", "Cancelled your timer."),
        (68, "Cancel all timers.", "You don't have any timers."),
    ],
    "pause, resume, add time": [
        (0, "Set a timer for 2 minutes.", "Timer set for 2 minutes."),
        (30, "Pause the timer.", "Paused. Your 2 minute timer is paused with 1 minute and 30 seconds left."),
        (500, "How much time is left on my timer?", "Your 2 minute timer is paused with 1 minute and 30 seconds left."),
        (501, "Pause the timer.", "Your 2 minute timer is not running."),
        (510, "Resume the timer.", "Resumed. Your 2 minute timer has 1 minute and 30 seconds left."),
        (520, "Add 5 minutes to the timer.", "Added 5 minutes. Your 2 minute timer has 6 minutes and 20 seconds left."),
        (521, "Take 10 minutes off the timer.", "Your 2 minute timer has only 6 minutes and 19 seconds left."),
    ],
    "bad input": [
        (0, "Set a timer for minus five minutes.", "A timer can't run for a negative time."),
        (0, "Set a timer for 30 hours.", "That's too long. The longest timer is 24 hours."),
        (0, "Set a timer.", "For how long? Say, for example, set a timer for ten minutes."),
        (0, "Set an alarm for 25 o'clock.", "There's no 25 o'clock. Say a time like seven thirty."),
        (0, "Pause the timer.", "You don't have any timers."),
        (0, "Set the volume to 150 percent.", "The volume goes from 0 to 100 percent, not 150."),
    ],
    "alarms": [
        (0, "Wake me up at seven.", "Alarm set for 7 AM tomorrow."),
        (0, "Set an alarm for 10:30 p.m.", "Alarm set for 10:30 PM today."),
        (0, "Wake me at 8 today.", "It's already past 8 PM today."),
        (0, "What alarms do I have?", "You have 2 alarms: at 10:30 PM today and 7 AM tomorrow."),
        (
            0,
            "Cancel my alarm.",
            "Which one? You have alarms at 10:30 PM today and 7 AM tomorrow. Or say cancel all alarms.",
        ),
        (0, "Cancel the alarm at 10:30 p.m.", "Cancelled your alarm for 10:30 PM today."),
        (0, "Cancel my alarm.", "Cancelled your alarm for 7 AM tomorrow."),
        (0, "Cancel my alarm.", "You don't have any alarms."),
    ],
    "volume": [
        (0, "Set the volume to 5.", "Volume 50 percent."),
        (0, "Louder.", "Volume 60 percent."),
        (0, "Turn the volume down by 30 percent.", "Volume 30 percent."),
        (0, "Volume to maximum.", "Volume 100 percent."),
        (0, "Volume up.", "That's already the loudest I go."),
        (0, "Mute.", ""),
        (0, "Unmute.", "Sound is back on, at 100 percent."),
    ],
}


@pytest.mark.parametrize("script", SCRIPTS, ids=list(SCRIPTS))
def test_scripts(matcher: IntentMatcher, tmp_path: Path, script: str) -> None:
    skills, clock = make(matcher, tmp_path)
    for at, request, expected in SCRIPTS[script]:
        assert say(skills, clock, request, at) == expected, request


def test_24_hour_clock_and_configured_zone(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path, EVENING.astimezone(ZoneInfo("America/New_York")), clock="24h")
    assert say(skills, clock, "what time is it") == "It's 15 oh 5."


def test_timers_ring_repeat_until_stopped(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path)
    say(skills, clock, "set a timer for 10 seconds", 0)
    say(skills, clock, "set an egg timer for 20 seconds", 0)
    assert skills.due(9.9) == []
    first = skills.due(10.0)
    assert [r.text for r in first] == ["Your 10 second timer is done."]
    assert skills.ringing
    assert skills.due(12.0) == []
    assert [r.text for r in skills.due(15.0)] == ["Your 10 second timer is done."]  # ring_s = 5
    assert [r.text for r in skills.due(20.0)] == ["Your 10 second timer is done.", "Your egg timer is done."]
    clock.now = 21.0
    reply = skills.handle("Stop!", 21.0)
    assert reply is not None and reply.action is Action.STOP and reply.text == ""
    assert not skills.ringing
    assert skills.due(30.0) == []


def test_ringing_gives_up_after_its_timeout(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path)
    say(skills, clock, "set a timer for 1 second", 0)
    rings = sum(len(skills.due(t / 10)) for t in range(0, 1000))  # 100 s of audio, ring timeout 60 s
    assert rings == 13  # at 1 s, then every 5 s up to 61 s
    assert not skills.ringing


def test_stop_the_timer_while_it_rings_silences_it(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path)
    say(skills, clock, "set a timer for 5 seconds", 0)
    assert skills.due(5.0)
    clock.now = 6.0
    reply = skills.handle("stop the timer", 6.0)
    assert reply is not None and reply.action is Action.STOP
    assert skills.due(11.0) == []


def test_alarm_rings_on_the_calendar(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path)
    assert say(skills, clock, "wake me up at 7 a.m.", 0) == "Alarm set for 7 AM tomorrow."
    seven = (datetime(2025, 3, 5, 7, 0, tzinfo=BERLIN) - EVENING).total_seconds()
    assert skills.due(seven - 1) == []
    clock.now = seven
    assert [r.text for r in skills.due(seven)] == ["It's 7 AM. This is your alarm."]


def test_an_alarm_in_half_an_hour_is_a_clock_time_from_now(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path)
    assert say(skills, clock, "Wake me up in half an hour.", 0) == "Alarm set for 9:35 PM today, in 30 minutes."
    assert skills.due(30 * 60 - 1) == []
    clock.now = 30 * 60
    assert [r.text for r in skills.due(clock.now)] == ["It's 9:35 PM. This is your alarm."]
    assert (
        say(skills, clock, "wake me in 30 hours")
        == "An alarm can be at most a day ahead. Say a time like seven thirty."
    )


def test_repeat_says_the_last_reply_again(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path)
    assert say(skills, clock, "repeat that") == "I haven't said anything yet."
    skills.remember("Paris is the capital of France.")
    reply = skills.handle("Say that again.", 0)
    assert reply is not None and reply.action is Action.REPEAT
    assert reply.text == "Paris is the capital of France."
    say(skills, clock, "what time is it")
    assert say(skills, clock, "what did you say") == "It's 9 oh 5 PM."


def test_volume_reply_carries_the_gain(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, _ = make(matcher, tmp_path)
    reply = skills.handle("set the volume to 40 percent", 0)
    assert reply is not None and reply.action is Action.VOLUME and reply.gain == pytest.approx(0.4)
    reply = skills.handle("mute", 0)
    assert reply is not None and reply.gain == 0.0 and skills.gain == 0.0
    reply = skills.handle("volume up", 0)
    assert reply is not None and reply.gain == pytest.approx(0.5)


def test_not_ours_and_disabled(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, _ = make(matcher, tmp_path)
    assert skills.handle("what is the capital of France", 0) is None
    off, _ = make(matcher, tmp_path, enabled=False)
    assert off.handle("what time is it", 0) is None
    assert off.tools() == []
    assert off.due(100.0) == []


# -- persistence ---------------------------------------------------------------------------------


def restart(matcher: IntentMatcher, tmp_path: Path, old: FakeClock, down_s: float) -> tuple[Skills, FakeClock]:
    """A new process: audio time starts again at 0; the calendar has moved on by `down_s`."""
    return make(matcher, tmp_path, old.calendar() + timedelta(seconds=down_s))


def test_timers_alarms_and_volume_survive_a_restart(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path)
    say(skills, clock, "set a timer for 10 minutes", 0)
    say(skills, clock, "set a tea timer for 5 minutes", 0)
    say(skills, clock, "pause the tea timer", 60)
    say(skills, clock, "wake me up at seven", 60)
    say(skills, clock, "set the volume to 30 percent", 60)
    assert not list(tmp_path.glob(".skills.json.*")), "temporary files left behind"

    again, clock2 = restart(matcher, tmp_path, clock, down_s=120)
    assert again.gain == pytest.approx(0.3)
    assert again.due(0.0) == []
    assert say(again, clock2, "how much time is left on the tea timer") == (
        "Your tea timer is paused with 4 minutes left."
    )
    assert say(again, clock2, "how much time is left on the 10 minute timer") == (
        "Your 10 minute timer has 7 minutes left."
    )
    assert say(again, clock2, "what alarms do I have") == "You have an alarm at 7 AM tomorrow."
    assert [r.text for r in again.due(420.0)] == ["Your 10 minute timer is done."]


def test_what_fell_due_while_down_is_reported_at_start(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path)
    say(skills, clock, "set a timer for 10 minutes", 0)
    say(skills, clock, "set an alarm for 9:30 p.m.", 0)
    again, _ = restart(matcher, tmp_path, clock, down_s=3600)
    late = again.due(0.0)
    assert sorted(r.text for r in late) == [
        "While I was off, your 10 minute timer went off.",
        "While I was off, your alarm for 9:30 PM today went off.",
    ]
    assert all(r.late for r in late)
    assert again.due(10.0) == [], "a missed one is reported once"
    third, clock3 = restart(matcher, tmp_path, clock, down_s=3700)
    assert third.due(0.0) == []
    assert say(third, clock3, "how much time is left") == "You don't have any timers."


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2, 3]",
        json.dumps({"version": 99, "timers": []}),
        json.dumps({"version": 1, "timers": [{"id": 1}]}),
        json.dumps({"version": 1, "timers": [], "volume": {"level_pct": 900}}),
    ],
)
def test_a_corrupt_state_file_is_moved_aside(
    matcher: IntentMatcher, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    (tmp_path / "skills.json").write_text(content, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="assistant.skills"):
        skills, clock = make(matcher, tmp_path)
    assert (tmp_path / "skills.json.corrupt").read_text(encoding="utf-8") == content
    assert any("moved to" in record.getMessage() for record in caplog.records)
    assert say(skills, clock, "how much time is left") == "You don't have any timers."
    assert skills.gain == 1.0
    say(skills, clock, "set a timer for 1 minute")
    assert json.loads((tmp_path / "skills.json").read_text(encoding="utf-8"))["timers"][0]["length_s"] == 60


def test_an_unwritable_state_dir_does_not_stop_the_skills(
    matcher: IntentMatcher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    skills, clock = make(matcher, blocker / "state")
    with caplog.at_level(logging.WARNING, logger="assistant.skills"):
        assert say(skills, clock, "set a timer for 1 minute") == "Timer set for 1 minute."
    assert any("cannot save" in record.getMessage() for record in caplog.records)


# -- tools for the LLM ---------------------------------------------------------------------------


def test_tool_definitions_are_ollama_functions_matching_their_argument_models(
    matcher: IntentMatcher, tmp_path: Path
) -> None:
    skills, _ = make(matcher, tmp_path)
    definitions = skills.tools()
    assert [d["function"]["name"] for d in definitions] == [t.name for t in TOOLS]
    for definition, tool in zip(definitions, TOOLS, strict=True):
        assert definition["type"] == "function"
        params = definition["function"]["parameters"]
        assert params["type"] == "object"
        assert set(params["properties"]) == set(tool.args.model_fields)
        assert set(params["required"]) <= set(params["properties"])
        assert {n for n, f in tool.args.model_fields.items() if f.is_required()} == set(params["required"])
        json.dumps(definition)  # plain JSON


@pytest.mark.parametrize(
    ("name", "arguments", "answer"),
    [
        ("get_current_time", {}, "It's 9 oh 5 PM. Today is Tuesday, March 4th, 2025."),
        ("start_timer", {"duration_s": 600, "name": "Pasta"}, "Pasta timer set for 10 minutes."),
        ("start_timer", {"duration_s": -5}, "error: start_timer: duration_s: Input should be greater than 0 (got -5)"),
        ("start_timer", {}, "error: start_timer: duration_s: Field required (got {})"),
        (
            "start_timer",
            {"duration_s": 60, "colour": "red"},
            "error: start_timer: colour: Extra inputs are not permitted",
        ),
        ("timer_status", {"name": "egg"}, "You don't have an egg timer."),
        ("set_alarm", {"time": "07:30", "day": "tomorrow"}, "Alarm set for 7:30 AM tomorrow."),
        ("set_alarm", {"time": "25:00"}, "error: set_alarm: time '25:00': There's no 25 o'clock."),
        (
            "set_alarm",
            {"time": "07:30", "day": "monday"},
            "error: set_alarm: day: Input should be 'today' or 'tomorrow'",
        ),
        ("set_volume", {"level_pct": 40}, "Volume 40 percent."),
        ("set_volume", {"level_pct": 400}, "error: set_volume: level_pct: Input should be less than or equal to 100"),
        ("change_volume", {"direction": "sideways"}, "error: change_volume: direction: Input should be 'up' or 'down'"),
        ("list_alarms", None, "You don't have any alarms."),
        ("start_timer", "ten minutes", "error: start_timer: arguments must be an object, not str"),
        ("launch_rocket", {}, "error: unknown tool 'launch_rocket'"),
    ],
)
def test_call_tool(matcher: IntentMatcher, tmp_path: Path, name: str, arguments: object, answer: str) -> None:
    skills, _ = make(matcher, tmp_path)
    assert skills.call_tool(name, arguments, 0.0).startswith(answer)


def test_tool_calls_and_speech_share_one_state(matcher: IntentMatcher, tmp_path: Path) -> None:
    skills, clock = make(matcher, tmp_path)
    assert skills.call_tool("start_timer", {"duration_s": 300, "name": "tea"}, 0.0) == "Tea timer set for 5 minutes."
    assert skills.call_tool("add_timer_time", {"seconds": -60, "name": "tea"}, 10.0) == (
        "Took off 1 minute. Your tea timer has 3 minutes and 50 seconds left."
    )
    assert say(skills, clock, "cancel the tea timer", 20) == "Cancelled your tea timer."
    assert skills.call_tool("cancel_timer", {"all": True}, 30.0) == "You don't have any timers."
    assert skills.call_tool("set_volume", {"level_pct": 20}, 30.0) == "Volume 20 percent."
    assert skills.gain == pytest.approx(0.2)


def test_config_names_a_bad_time_zone() -> None:
    from assistant import config as config_module
    from assistant.core.errors import ConfigError

    assert config_module.load(overrides=["skills.timezone=Europe/Berlin"]).skills.timezone == "Europe/Berlin"
    with pytest.raises(ConfigError) as caught:
        config_module.load(overrides=["skills.timezone=Mars/Olympus"])
    assert "skills.timezone = 'Mars/Olympus'" in str(caught.value)
    assert "IANA" in str(caught.value)
