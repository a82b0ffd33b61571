"""Transcript → intent and slots, with hassil and the templates of home-assistant-intents.

Two passes: Home Assistant's English templates for the intents this device
handles plus the device's own (`sentences/en.yaml`); then catch-alls
(`sentences/en-fallback.yaml`) whose free-text slots are parsed here, so a
duration HA's lists do not cover works and an impossible one gets an answer.
Slots come out canonical (`duration_s`, `start_s`, `name`, `level_pct`,
`direction`, `hour`/`minute`/`day`), or as `invalid` with the spoken `problem`.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jellyfish
import yaml
from hassil import Intents, RecognizeResult, SlotList, TextSlotList, recognize_best
from home_assistant_intents import get_intents

from assistant.skills.spoken import BadValue, parse_clock, parse_duration, say_duration, split_day, to_digits

logger = logging.getLogger(__name__)

# The intents of home-assistant-intents this device answers itself.
HA_INTENTS = frozenset(
    {
        "HassGetCurrentTime",
        "HassGetCurrentDate",
        "HassStartTimer",
        "HassCancelTimer",
        "HassCancelAllTimers",
        "HassIncreaseTimer",
        "HassDecreaseTimer",
        "HassPauseTimer",
        "HassUnpauseTimer",
        "HassTimerStatus",
        "HassNevermind",
        "HassSetVolume",
        "HassSetVolumeRelative",
        "HassMediaPlayerMute",
        "HassMediaPlayerUnmute",
    }
)
# HA slots that need Home Assistant itself (rooms, devices, "in 5 minutes turn off the lights").
_HA_ONLY_SLOTS = ("{area}", "{floor}", "{name}", "conversation_command")
_CONTEXT = {"area": "this device"}  # HA's volume and mute templates require an area in context
_WAKE_PUNCT = re.compile(r"^[\s,.!?]+|[\s,.!?]+$")


@dataclass(frozen=True)
class Match:
    """One recognized request: the intent, canonical slots and the text it was matched on."""

    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    text: str = ""


def _load_yaml(name: str) -> dict[str, Any]:
    text = resources.files("assistant.skills").joinpath("sentences").joinpath(name).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict), name
    return data


def _ha_subset() -> dict[str, Any]:
    data = get_intents("en")
    if data is None:
        raise RuntimeError("home-assistant-intents has no English templates")
    kept: dict[str, Any] = {}
    for name in HA_INTENTS:
        blocks = [
            block
            for block in data["intents"].get(name, {}).get("data", [])
            if not any(slot in sentence for sentence in block["sentences"] for slot in _HA_ONLY_SLOTS)
        ]
        if blocks:
            kept[name] = {"data": blocks}
    return {
        "language": "en",
        "intents": kept,
        "lists": dict(data["lists"]),
        "expansion_rules": dict(data["expansion_rules"]),
        "skip_words": list(data["skip_words"]),
    }


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for name, intent in extra.get("intents", {}).items():
        merged["intents"].setdefault(name, {"data": []})["data"].extend(intent["data"])
    for key in ("lists", "expansion_rules"):
        merged.setdefault(key, {}).update(extra.get(key, {}))
    merged["skip_words"] = [*merged.get("skip_words", []), *extra.get("skip_words", [])]
    return merged


class IntentMatcher:
    """Matches a transcript against HA's and the device's templates; `None` means "ask the LLM"."""

    def __init__(self, strip_words: Iterable[str] = (), *, max_timer_s: float | None = None) -> None:
        ha = _ha_subset()
        primary = _merge(ha, _load_yaml("en.yaml"))
        fallback = _merge({**ha, "intents": {}}, _load_yaml("en-fallback.yaml"))
        self._passes = [
            (Intents.from_dict(primary), primary["skip_words"]),
            (Intents.from_dict(fallback), fallback["skip_words"]),
        ]
        self._lists: dict[str, SlotList] = {
            "area": TextSlotList.from_strings([]),
            "floor": TextSlotList.from_strings([]),
            "name": TextSlotList.from_strings([]),
        }
        words = sorted((w.strip().lower() for w in strip_words if w.strip()), key=len, reverse=True)
        self._strip = (
            re.compile(r"^\s*(?:" + "|".join(r"[\s,.!?]*".join(map(re.escape, w.split())) for w in words) + r")\b")
            if words
            else None
        )
        self.max_timer_s = max_timer_s
        self._sounds = _sound_index(primary, fallback)
        self.match("what time is it")  # hassil builds its tries on first use: pay that now

    def clean(self, text: str) -> str:
        """The transcript as matched: wake word and edge punctuation off, hyphens and a.m./p.m. tidied."""
        cleaned = text.strip().lower()
        if self._strip is not None:
            cleaned = self._strip.sub("", cleaned, count=1)
        cleaned = re.sub(r"\b([ap])\.\s?m\.", r"\1m", cleaned, flags=re.IGNORECASE)
        cleaned = re.sub(r"(?<=\w)-(?=\w)", " ", cleaned)
        return _WAKE_PUNCT.sub("", cleaned)

    def match(self, text: str) -> Match | None:
        """The intent and canonical slots of `text`, or None when it is not the device's own.

        What Whisper wrote is tried as it is first; only if nothing matches, words
        that sound like a template word ("console" for "cancel") are replaced, and
        then a mangled first word (the clipped onset: "Check the volume to 3") is dropped.
        """
        cleaned = self.clean(text)
        if not cleaned:
            return None
        tried = set()
        for candidate in (cleaned, self._sound_alike(cleaned)):
            for variant in (candidate, _drop_first_word(candidate)):
                if variant and variant not in tried:
                    tried.add(variant)
                    if (match := self._match(variant)) is not None:
                        return match
        return None

    def _sound_alike(self, text: str) -> str:
        words = text.split()
        for index, word in enumerate(words):
            bare = word.strip(".,!?;:")
            if bare.isalpha() and bare not in self._sounds.words:
                words[index] = self._sounds.codes.get(jellyfish.metaphone(bare), word)
        return " ".join(words)

    def _match(self, cleaned: str) -> Match | None:
        for intents, skip_words in self._passes:
            result = recognize_best(
                cleaned,
                intents,
                slot_lists=self._lists,
                skip_words=skip_words,
                intent_context=_CONTEXT,
                language="en",
            )
            if result is not None:
                match = Match(result.intent.name, self._resolve(result, cleaned), cleaned)
                logger.debug("skills: %r -> %s %s", cleaned, match.intent, match.slots)
                return match
        return None

    def _resolve(self, result: RecognizeResult, text: str) -> dict[str, Any]:
        raw = {name: entity.value for name, entity in result.entities.items() if name != "area"}
        slots: dict[str, Any] = {}
        try:
            _resolve_into(slots, raw, text, self.max_timer_s)
        except BadValue as exc:
            return {"invalid": getattr(exc, "slot", "value"), "problem": str(exc)}
        return slots


@dataclass(frozen=True)
class _Sounds:
    words: frozenset[str]
    codes: dict[str, str]  # metaphone code -> the one template word with that sound


def _sound_index(*dicts: dict[str, Any]) -> _Sounds:
    """Every literal word of the templates, and the words whose sound (metaphone) is unique."""
    texts: list[str] = []
    for data in dicts:
        for intent in data["intents"].values():
            texts.extend(sentence for block in intent["data"] for sentence in block["sentences"])
        texts.extend(str(rule) for rule in data.get("expansion_rules", {}).values())
    words = set()
    for text in texts:
        words.update(re.findall(r"[a-z']+", re.sub(r"\{[^}]*\}|<[^>]*>", " ", text.lower())))
    by_code: dict[str, set[str]] = {}
    for word in words:
        if len(word) >= 4:  # short words sound alike too easily
            by_code.setdefault(jellyfish.metaphone(word), set()).add(word)
    codes = {code: next(iter(found)) for code, found in by_code.items() if len(found) == 1}
    return _Sounds(frozenset(words), codes)


def _drop_first_word(text: str) -> str:
    words = text.split()
    return " ".join(words[1:]) if len(words) >= 3 else ""


def _number(value: Any) -> float:
    return float(value) if not isinstance(value, str) else float(value.strip())


def _seconds(raw: dict[str, Any], prefix: str) -> float | None:
    parts = [(f"{prefix}hours", 3600), (f"{prefix}minutes", 60), (f"{prefix}seconds", 1)]
    found = [(raw[key], scale) for key, scale in parts if key in raw]
    if not found:
        return None
    return sum(_number(value) * scale for value, scale in found)


def _bad(slot: str, exc: BadValue) -> BadValue:
    exc.slot = slot  # type: ignore[attr-defined]
    return exc


def _resolve_into(slots: dict[str, Any], raw: dict[str, Any], text: str, max_timer_s: float | None) -> None:
    if (duration := _seconds(raw, "")) is not None:
        if max_timer_s is not None and duration > max_timer_s:
            raise _bad("duration", BadValue(f"That's too long. The longest timer is {say_duration(max_timer_s)}."))
        slots["duration_s"] = duration
    if (start := _seconds(raw, "start_")) is not None:
        slots["start_s"] = start
    if "duration" in raw:
        try:
            slots["duration_s"] = parse_duration(str(raw["duration"]), limit_s=max_timer_s)
        except BadValue as exc:
            raise _bad("duration", exc) from None
    if "name" in raw:
        name = re.sub(r"^(the|my|a|an)\s+", "", str(raw["name"]).strip().lower())
        slots["name"] = name.strip(" .,!?")
    if "volume_level" in raw:
        level = _number(raw["volume_level"])
        said_percent = re.search(r"%|percent", text) is not None
        slots["level_pct"] = round(level * 10 if level <= 10 and not said_percent else level)
    if "volume_text" in raw:
        said = str(raw["volume_text"])
        number = re.search(r"-?\d+(?:\.\d+)?", to_digits(said))
        if number is None:
            raise _bad("level", BadValue(f"I didn't catch the volume: {said}. Say a level from 0 to 100 percent."))
        level = float(number.group())
        scaled = level * 10 if 0 <= level <= 10 and re.search(r"%|percent", said) is None else level
        if not 0 <= scaled <= 100:
            raise _bad("level", BadValue(f"The volume goes from 0 to 100 percent, not {number.group()}."))
        slots["level_pct"] = round(scaled)
    if "volume_step" in raw:
        step = raw["volume_step"]
        if isinstance(step, str):
            slots["direction"] = step
        else:
            slots["direction"] = "up" if _number(step) > 0 else "down"
            slots["step_pct"] = abs(round(_number(step)))
    if "alarm_time" in raw or "alarm_day" in raw:
        _resolve_alarm(slots, raw)
    for key in ("ask_duration", "all"):
        if key in raw:
            slots[key] = bool(raw[key])


def _resolve_alarm(slots: dict[str, Any], raw: dict[str, Any]) -> None:
    day = raw.get("alarm_day")
    if day == "tonight":
        day, raw = "today", {**raw, "alarm_time": f"{raw.get('alarm_time', '')} pm"}
    if "alarm_time" not in raw:
        if day:
            slots["day"] = day
        return
    phrase, said_day = split_day(str(raw["alarm_time"]))
    day = day or said_day
    try:
        when = parse_clock(phrase)
    except BadValue as exc:
        raise _bad("time", exc) from None
    slots["hour"], slots["minute"] = when.hour, when.minute
    if when.meridiem:
        slots["meridiem"] = when.meridiem
    if day:
        slots["day"] = day
