"""Spoken numbers, durations and clock times: parsing what Whisper wrote, and saying them back.

Number words go through text2num (`alpha2digit`), so "ten", "10" and
"one hundred and twenty" read the same. Every parse failure raises
`BadValue` whose message is the sentence the device says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from text_to_num import alpha2digit

Clock = Literal["12h", "24h"]
Day = Literal["today", "tomorrow"]


class BadValue(ValueError):
    """A value the user said that cannot be used; the message is the spoken answer."""


_UNITS = {
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
}
_NUMBER = r"\d+(?:\.\d+)?"
_AMOUNT = re.compile(rf"({_NUMBER})\s*({'|'.join(sorted(_UNITS, key=len, reverse=True))})\b")
_NEGATIVE = re.compile(r"\b(minus|negative)\b|(?<![\w.])-\s*\d")


def to_digits(text: str) -> str:
    """Lower-case, tidy the forms Whisper writes (a.m., o'clock, hyphens), number words to digits."""
    text = text.lower().replace("½", " and a half")
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", r"\1", text)  # "8th 30": Whisper's "eight thirty"
    text = re.sub(r"(?<=\d)(?=[a-z])", " ", text)  # 6.45pm, 10min
    text = re.sub(r"\ba\.?\s?m\b\.?", " am ", text)
    text = re.sub(r"\bp\.?\s?m\b\.?", " pm ", text)
    text = re.sub(r"\bo['’]?\s?clock\b", " oclock ", text)
    text = re.sub(r"(?<=[a-z])-(?=[a-z\d])|(?<=\d)-(?=[a-z])", " ", text)  # ten-minute, 10-minute
    text = re.sub(r"\bfree\b", "three", text)  # Whisper's spelling of a spoken "three" ("volume to free")
    text = re.sub(r"[,!?;\"]", " ", text)
    text = re.sub(r"\.(?!\d)", " ", text)  # keep 7.30, drop sentence stops
    text = alpha2digit(" ".join(text.split()), "en", threshold=0)
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", r"\1", text)  # number words can become ordinals too
    return " ".join(text.split())


def parse_duration(text: str, *, limit_s: float | None = None) -> float:
    """Seconds in "10 minutes", "an hour and a half", "2 hours 5 minutes"; BadValue otherwise."""
    said = text.strip()
    digits = to_digits(text)
    # Whisper's spellings of a spoken "an": "the hour and a half", "hours and a half" (the article dropped).
    digits = re.sub(r"^(?:the )?(hour|minute|second)s? and a half\b", r"an \1 and a half", digits)
    digits = re.sub(r"^the (hour|minute|second)$", r"an \1", digits)
    digits = re.sub(r"\bhalf (an? )?(hour|minute)\b", r"0.5 \2", digits)
    digits = re.sub(r"\b(an?|1) (hour|minute|second)s? and a half\b", r"1.5 \2", digits)
    digits = re.sub(rf"\b({_NUMBER}) and a half (hour|minute|second)s?\b", r"\1.5 \2", digits)
    digits = re.sub(rf"\b({_NUMBER}) 1/2 (hour|minute|second)s?\b", r"\1.5 \2", digits)
    digits = re.sub(r"\ban? (hour|minute|second)\b", r"1 \1", digits)
    amounts = _AMOUNT.findall(digits)
    if not amounts:
        raise BadValue(f"I didn't catch how long: {said}. Say something like ten minutes.")
    if _NEGATIVE.search(digits):
        raise BadValue("A timer can't run for a negative time.")
    total = sum(float(value) * _UNITS[unit] for value, unit in amounts)
    if total < 1:
        raise BadValue("A timer needs at least one second.")
    if limit_s is not None and total > limit_s:
        raise BadValue(f"That's too long. The longest timer is {say_duration(limit_s)}.")
    return total


@dataclass(frozen=True)
class ClockTime:
    """A time of day as said: hour 0-23, minute, and whether AM/PM was given."""

    hour: int
    minute: int
    meridiem: Literal["am", "pm"] | None = None

    def hours24(self) -> tuple[int, ...]:
        """The 24-hour readings this could mean: one, or two for a bare "seven"."""
        if self.meridiem == "am":
            return (self.hour % 12,)
        if self.meridiem == "pm":
            return (self.hour % 12 + 12,)
        if 1 <= self.hour <= 12:
            return (self.hour % 12, self.hour % 12 + 12)
        return (self.hour,)


_PARTS_OF_DAY = (
    (re.compile(r"\b(in the )?morning\b"), "am"),
    (re.compile(r"\b(in the )?(afternoon|evening)\b|\bat night\b|\btonight\b"), "pm"),
)
_RELATIVE = re.compile(rf"^(half|quarter|{_NUMBER})( minutes?)? (past|pass|after|to|before|till) (\d{{1,2}})$")
_PLAIN = re.compile(r"^(\d{1,4})(?:\s*[:.\s]\s*(?:oh\s*)?(\d{1,2}))?$")


def split_day(text: str) -> tuple[str, Day | None]:
    """Take "today" / "tomorrow" (and "tonight") out of a time phrase."""
    lowered = text.lower()
    if re.search(r"\btonight\b", lowered):
        return lowered, "today"  # "tonight" stays: parse_clock reads it as PM
    for word in ("tomorrow", "today"):
        if re.search(rf"\b{word}\b", lowered):
            day: Day = word  # type: ignore[assignment]
            return " ".join(re.sub(rf"\b{word}\b", " ", lowered).split()), day
    return lowered, None


def parse_clock(text: str) -> ClockTime:
    """A time of day from "seven", "7:30 a.m.", "half past six", "noon"; BadValue otherwise."""
    said = text.strip()
    t = to_digits(text)
    meridiem: Literal["am", "pm"] | None = None
    for pattern, part in _PARTS_OF_DAY:
        if pattern.search(t):
            t, meridiem = pattern.sub(" ", t), part  # type: ignore[assignment]
    for word, mark in ((r"\bam\b", "am"), (r"\bpm\b", "pm")):
        if re.search(word, t):
            t, meridiem = re.sub(word, " ", t), mark  # type: ignore[assignment]
    t = re.sub(r"\b(at|for|the|oclock|exactly|sharp)\b", " ", t)
    t = " ".join(t.split())
    if t in ("noon", "midday", "12 noon"):
        return ClockTime(12, 0, "pm")
    if t in ("midnight", "12 midnight"):
        return ClockTime(0, 0, "am")
    hour: int
    minute: int
    if relative := _RELATIVE.match(t):
        amount, _, direction, base = relative.groups()
        minutes = {"half": 30, "quarter": 15}.get(amount) or int(float(amount))
        if minutes >= 60:
            raise BadValue(f"I can't use {said} as a time. Say something like seven thirty.")
        hour, minute = int(base), minutes
        if direction in ("to", "before", "till"):
            hour, minute = (hour - 1) % 24 if hour != 0 else 23, 60 - minutes
            if meridiem is None and hour == 0:
                hour = 12
    elif plain := _PLAIN.match(t):
        head, tail = plain.groups()
        if tail is None and len(head) in (3, 4):  # "730", "0730"
            head, tail = head[:-2], head[-2:]
        hour, minute = int(head), int(tail or 0)
    else:
        raise BadValue(f"I can't use {said} as a time. Say something like seven thirty.")
    if meridiem is not None and not 1 <= hour <= 12:
        raise BadValue(f"There's no {hour} {meridiem.upper()}. Say a time like seven thirty.")
    if not 0 <= hour <= 23:
        raise BadValue(f"There's no {hour} o'clock. Say a time like seven thirty.")
    if not 0 <= minute <= 59:
        raise BadValue(f"There's no minute {minute} in an hour. Say a time like seven thirty.")
    return ClockTime(hour, minute, meridiem)


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def say_duration(seconds: float) -> str:
    """ "10 minutes", "1 hour and 30 minutes", "2 minutes and 5 seconds" (seconds dropped past an hour)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(_plural(hours, "hour"))
    if minutes:
        parts.append(_plural(minutes, "minute"))
    if secs and not hours:
        parts.append(_plural(secs, "second"))
    if not parts:
        return "less than a second"
    return " and ".join(parts) if len(parts) <= 2 else f"{parts[0]}, {parts[1]} and {parts[2]}"


def timer_label(seconds: float) -> str:
    """How a timer is named by its length: "10 minute", "1 hour 30 minute"."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second")) if n]
    return " ".join(parts) or "0 second"


def say_clock(moment: datetime | tuple[int, int], clock: Clock = "12h") -> str:
    """A time of day as Piper should read it: "7 AM", "7:30 PM", "7 oh 5 AM", "19:30"."""
    hour, minute = (moment.hour, moment.minute) if isinstance(moment, datetime) else moment
    if clock == "24h":
        return f"{hour}:{minute:02d}" if minute >= 10 else (f"{hour} hundred" if not minute else f"{hour} oh {minute}")
    mark = "AM" if hour < 12 else "PM"
    shown = hour % 12 or 12
    if minute == 0:
        return f"{shown} {mark}"
    if minute < 10:
        return f"{shown} oh {minute} {mark}"
    return f"{shown}:{minute:02d} {mark}"


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def say_date(day: date) -> str:
    """ "Tuesday, March 4th, 2025"."""
    return f"{day:%A}, {day:%B} {_ordinal(day.day)}, {day.year}"
