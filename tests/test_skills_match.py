"""Matching: transcripts (as Whisper writes them) to intents and canonical slots, and the parsers."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.skills.matcher import IntentMatcher
from assistant.skills.spoken import BadValue, ClockTime, parse_clock, parse_duration, say_clock, say_duration


@pytest.fixture(scope="module")
def matcher() -> IntentMatcher:
    return IntentMatcher(["hey jarvis", "jarvis"], max_timer_s=86400)


CASES: list[tuple[str, str, dict[str, Any]]] = [
    # time and date, with the wake word and punctuation Whisper leaves in
    ("Hey Jarvis, what time is it?", "HassGetCurrentTime", {}),
    ("What's the time?", "HassGetCurrentTime", {}),
    ("what time is it right now", "HassGetCurrentTime", {}),
    ("Jarvis. Tell me the time, please.", "HassGetCurrentTime", {}),
    ("What's the date today?", "HassGetCurrentDate", {}),
    ("What day is it?", "HassGetCurrentDate", {}),
    # timers: digits or words, hyphens, dropped articles, names, long and odd durations
    ("Set a timer for 10 minutes.", "HassStartTimer", {"duration_s": 600}),
    ("set a timer for ten minutes", "HassStartTimer", {"duration_s": 600}),
    ("Set timer for 5 minutes", "HassStartTimer", {"duration_s": 300}),
    ("Set a 10-minute timer.", "HassStartTimer", {"duration_s": 600}),
    ("set timer 5 minutes", "HassStartTimer", {"duration_s": 300}),
    ("Set a timer for 1 hour and 30 minutes.", "HassStartTimer", {"duration_s": 5400}),
    ("Set a timer for an hour and a half.", "HassStartTimer", {"duration_s": 5400}),
    ("Set a timer for 150 minutes.", "HassStartTimer", {"duration_s": 9000}),
    ("Set a pizza timer for 12 minutes.", "HassStartTimer", {"duration_s": 720, "name": "pizza"}),
    ("Start a timer for 20 minutes called tea.", "HassStartTimer", {"duration_s": 1200, "name": "tea"}),
    ("Set a timer.", "HassStartTimer", {"ask_duration": True}),
    ("How much time is left?", "HassTimerStatus", {}),
    ("How much time is left on the pizza timer?", "HassTimerStatus", {"name": "pizza"}),
    ("Cancel the timer.", "HassCancelTimer", {}),
    ("Cancel the 10 minute timer.", "HassCancelTimer", {"start_s": 600}),
    ("Stop the pizza timer.", "HassCancelTimer", {"name": "pizza"}),
    ("Cancel all timers.", "HassCancelAllTimers", {}),
    ("Pause the timer.", "HassPauseTimer", {}),
    ("Resume the timer.", "HassUnpauseTimer", {}),
    ("Add 5 minutes to the timer.", "HassIncreaseTimer", {"duration_s": 300}),
    ("Add five minutes.", "HassIncreaseTimer", {"duration_s": 300}),
    # Whisper's small errors on real speech: "and" for "add", a split word, a wrong or missing article
    ("And 5 minutes to the timer.", "HassIncreaseTimer", {"duration_s": 300}),
    ("Re-zoom the timer.", "HassUnpauseTimer", {}),
    ("Console the timer", "HassCancelTimer", {}),
    ("Set a timer for the hour and a half.", "HassStartTimer", {"duration_s": 5400}),
    ("Set a timer for hours and a half.", "HassStartTimer", {"duration_s": 5400}),
    # the wake phrase at the start, written wrong: "Hey John, this is" for "Hey Jarvis"
    ("Hey John, this is stop.", "SkillStop", {}),
    ("They are a miss, cancel the timer.", "HassCancelTimer", {}),
    ("Stay Jarvis, never mind.", "HassNevermind", {}),
    ("Hey, Jeremy, set the volume to 50%.", "HassSetVolume", {"level_pct": 50}),
    ("Hang on, miss. Set a pizza timer for 12 minutes.", "HassStartTimer", {"duration_s": 720, "name": "pizza"}),
    ("Set an alarm for half-pass six.", "SkillSetAlarm", {"hour": 6, "minute": 30}),
    ("Set the volume to free.", "HassSetVolume", {"level_pct": 30}),
    # alarms
    ("Wake me up at 7 a.m.", "SkillSetAlarm", {"hour": 7, "minute": 0, "meridiem": "am"}),
    ("Wake me at seven tomorrow.", "SkillSetAlarm", {"hour": 7, "minute": 0, "day": "tomorrow"}),
    ("Wake me up tomorrow at 6.", "SkillSetAlarm", {"hour": 6, "minute": 0, "day": "tomorrow"}),
    (
        "Set an alarm for 6:30 tomorrow morning.",
        "SkillSetAlarm",
        {"hour": 6, "minute": 30, "meridiem": "am", "day": "tomorrow"},
    ),
    ("Set an alarm for half past six.", "SkillSetAlarm", {"hour": 6, "minute": 30}),
    ("Set an alarm for 7 30 p.m.", "SkillSetAlarm", {"hour": 7, "minute": 30, "meridiem": "pm"}),
    ("Set an alarm.", "SkillSetAlarmAsk", {}),
    ("Set a alarm for 7am.", "SkillSetAlarm", {"hour": 7, "minute": 0, "meridiem": "am"}),
    ("Cancel my alarm.", "SkillCancelAlarm", {}),
    ("Cancel all alarms.", "SkillCancelAlarm", {"all": True}),
    ("What alarms do I have?", "SkillAlarmStatus", {}),
    # volume and mute
    ("Volume up.", "HassSetVolumeRelative", {"direction": "up"}),
    ("Louder.", "HassSetVolumeRelative", {"direction": "up"}),
    ("Turn it down.", "HassSetVolumeRelative", {"direction": "down"}),
    ("Turn up the volume by 20%.", "HassSetVolumeRelative", {"direction": "up", "step_pct": 20}),
    ("Set the volume to 50%.", "HassSetVolume", {"level_pct": 50}),
    ("Set the volume to 5.", "HassSetVolume", {"level_pct": 50}),
    ("Set the volume to five percent.", "HassSetVolume", {"level_pct": 5}),
    ("Volume to maximum.", "HassSetVolume", {"level_pct": 100}),
    ("Mute.", "HassMediaPlayerMute", {}),
    ("Unmute.", "HassMediaPlayerUnmute", {}),
    # stop, never mind, repeat
    ("Stop.", "SkillStop", {}),
    ("Stop the alarm.", "SkillStop", {}),
    ("Be quiet.", "SkillStop", {}),
    ("Never mind.", "HassNevermind", {}),
    ("Nevermind", "HassNevermind", {}),
    ("Repeat that.", "SkillRepeat", {}),
    ("Say that again, please.", "SkillRepeat", {}),
    ("What did you say?", "SkillRepeat", {}),
]


@pytest.mark.parametrize(("text", "intent", "slots"), CASES)
def test_matches_intent_and_slots(matcher: IntentMatcher, text: str, intent: str, slots: dict[str, Any]) -> None:
    match = matcher.match(text)
    assert match is not None, text
    assert (match.intent, match.slots) == (intent, slots)


@pytest.mark.parametrize(
    ("text", "intent", "invalid", "says"),
    [
        ("Set a timer for minus five minutes.", "HassStartTimer", "duration", "negative"),
        ("Set a timer for -5 minutes.", "HassStartTimer", "duration", "negative"),
        ("Set a timer for zero seconds.", "HassStartTimer", "duration", "at least one second"),
        ("Set a timer for 30 hours.", "HassStartTimer", "duration", "too long"),
        ("Set a timer for banana.", "HassStartTimer", "duration", "didn't catch how long"),
        ("Set a timer for the hour and the half.", "HassStartTimer", "duration", "didn't catch how long"),
        ("Set an alarm for 25 o'clock.", "SkillSetAlarm", "time", "no 25 o'clock"),
        ("Wake me up at 7:75.", "SkillSetAlarm", "time", "no minute 75"),
        ("Wake me up at 13 p.m.", "SkillSetAlarm", "time", "no 13 PM"),
        # After a wake phrase Whisper wrote as a sentence of its own, as the bare request would be.
        ("Stay nervous. Set an alarm for 25 o'clock.", "SkillSetAlarm", "time", "no 25 o'clock"),
        ("Hey Jarvis. Wake me up in 30 hours.", "SkillSetAlarm", "time", "at most a day"),
    ],
)
def test_impossible_values_are_ours_with_a_spoken_problem(
    matcher: IntentMatcher, text: str, intent: str, invalid: str, says: str
) -> None:
    match = matcher.match(text)
    assert match is not None and match.intent == intent
    assert match.slots["invalid"] == invalid
    assert says in match.slots["problem"]


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "What time is it in Tokyo?",
        "Tell me a joke about timers.",
        "Turn on the kitchen lights.",
        "How long does it take to boil an egg?",
        "Who wrote the stop sign rules?",
        "What time does the bakery open?",
        "How many minutes are in an hour?",
        "Who invented the alarm clock?",
        "What is the volume of a sphere?",
        "How do I make a timer in Python?",
        "And then what did you add to the timer?",
        "Set the table for dinner.",
        "Play some music.",
        "Add eggs to the shopping list.",
        "When will the rain stop?",
        "Hey, don't stop.",
        "Hey, how do I set an alarm on my phone?",
        "Hey John, what is the volume of a sphere?",
        "Hey Jarvis. How do I set an alarm on my phone?",
        "",
        "  ...  ",
    ],
)
def test_other_requests_go_to_the_llm(matcher: IntentMatcher, text: str) -> None:
    assert matcher.match(text) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("ten minutes", 600),
        ("10 min", 600),
        ("10min", 600),
        ("half an hour", 1800),
        ("an hour and a half", 5400),
        ("the hour and a half", 5400),
        ("hours and a half", 5400),
        ("1 1/2 hours", 5400),
        ("two and a half minutes", 150),
        ("one hour, twenty minutes and five seconds", 4805),
        ("2 hours 5 minutes", 7500),
        ("a minute", 60),
        ("90 seconds", 90),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("seven", ClockTime(7, 0)),
        ("7:30 a.m.", ClockTime(7, 30, "am")),
        ("6.45pm", ClockTime(6, 45, "pm")),
        ("half past six", ClockTime(6, 30)),
        ("quarter to eight", ClockTime(7, 45)),
        ("ten to seven", ClockTime(6, 50)),
        ("seven oh five", ClockTime(7, 5)),
        ("730", ClockTime(7, 30)),
        ("13:00", ClockTime(13, 0)),
        ("noon", ClockTime(12, 0, "pm")),
        ("midnight", ClockTime(0, 0, "am")),
        ("seven thirty in the evening", ClockTime(7, 30, "pm")),
    ],
)
def test_parse_clock(text: str, when: ClockTime) -> None:
    assert parse_clock(text) == when


@pytest.mark.parametrize("text", ["25 o'clock", "7:75", "0 am", "13 pm", "sometime", "61 past 7"])
def test_parse_clock_refuses_impossible_times(text: str) -> None:
    with pytest.raises(BadValue):
        parse_clock(text)


def test_hours24_of_a_bare_hour_is_both_halves_of_the_day() -> None:
    assert ClockTime(7, 0).hours24() == (7, 19)
    assert ClockTime(12, 0).hours24() == (0, 12)
    assert ClockTime(12, 0, "am").hours24() == (0,)
    assert ClockTime(19, 0).hours24() == (19,)


@pytest.mark.parametrize(
    ("seconds", "spoken"),
    [
        (600, "10 minutes"),
        (61, "1 minute and 1 second"),
        (5400, "1 hour and 30 minutes"),
        (3601, "1 hour"),
        (0.2, "less than a second"),
    ],
)
def test_say_duration(seconds: float, spoken: str) -> None:
    assert say_duration(seconds) == spoken


@pytest.mark.parametrize(
    ("hm", "clock", "spoken"),
    [((7, 0), "12h", "7 AM"), ((19, 5), "12h", "7 oh 5 PM"), ((0, 30), "12h", "12:30 AM"), ((19, 30), "24h", "19:30")],
)
def test_say_clock(hm: tuple[int, int], clock: str, spoken: str) -> None:
    assert say_clock(hm, clock) == spoken  # type: ignore[arg-type]
