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
from difflib import SequenceMatcher
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
WAKE_WORDS = 4  # the most words a mangled wake phrase takes ("hey john this is")
WAKE_LIKE = 0.65  # similarity to the wake phrase's words ("hey": "they" 0.86, "hay" 0.67; not "when" 0.57)
_FIRST_SENTENCE = re.compile(r"^([^.!?]*[a-z'])[.!?]\s+(\S.*)$")  # "change our miss. set a timer"; not "7.30"
_NEGATIONS = frozenset({"don't", "do", "not", "never", "can't", "cannot", "won't", "didn't", "doesn't"})
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
        phrases = [w.split() for w in words]
        self._wake_heads = {p[0] for p in phrases if len(p) > 1}  # "hey" of "hey jarvis"
        self._wake_names = {p[-1] for p in phrases if len(p[-1]) >= 4}  # "jarvis"
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
        then a mangled first word (the clipped onset: "Check the volume to 3") is dropped,
        and last a mangled wake phrase: the request audio starts with the wake phrase,
        which Whisper may write as "Hey John, this is", "They are a miss" or "Stay nervous".
        """
        cleaned = self.clean(text)
        if not cleaned:
            return None
        tried = set()
        candidates = (cleaned, self._sound_alike(cleaned))
        # (text, whether a match with a value it did not catch counts): after a mangled wake phrase
        # only a clean match does, so "Hey, how do I set an alarm on my phone?" is not an alarm.
        variants = [(v, True) for c in candidates for v in (c, _drop_first_word(c))]
        variants += [(v, False) for c in candidates for v in self._after_wake(c)]
        sentence = _FIRST_SENTENCE.match(cleaned)
        if sentence is not None and len(sentence.group(1).split()) <= WAKE_WORDS:
            # A short first sentence is most likely the wake phrase: what follows it is tried first,
            # so "Hang on, miss. Set a pizza timer" does not name the timer "hang on miss set a pizza".
            # It is a request of its own, taken as the bare request would be: a value it did not catch
            # counts ("Stay nervous. Set an alarm for 25 o'clock.").
            variants.insert(0, (sentence.group(2), True))
        for variant, unclear_ok in variants:
            if variant and variant not in tried:
                tried.add(variant)
                match = self._match(variant)
                if match is not None and (unclear_ok or "invalid" not in match.slots):
                    return match
        return None

    def _after_wake(self, text: str) -> list[str]:
        """What may follow a mangled wake phrase at the start of `text`: the rest after a first
        sentence of at most WAKE_WORDS words, or after the first 1 to WAKE_WORDS words when the first
        sounds like the wake phrase's first word ("they" for "hey") or one of them like its name
        ("Stay Jarvis")."""
        after: list[str] = []
        sentence = _FIRST_SENTENCE.match(text)
        if sentence is not None and len(sentence.group(1).split()) <= WAKE_WORDS:
            # Whisper often ends a mangled wake phrase with a full stop: "Change our miss. Pause the timer."
            after.append(sentence.group(2))
        words = [word.strip(".,!?;:") for word in text.split()]
        head = words[:WAKE_WORDS]
        heads = any(_like(head[0], first) for first in self._wake_heads) if head else False
        if heads or any(_like(word, name) for word in head for name in self._wake_names):
            # Never the rest after a negation: "Hey, don't stop" is not "stop".
            cuts = range(1, min(WAKE_WORDS, len(words) - 1) + 1)
            after += [" ".join(words[n:]) for n in cuts if words[n - 1] not in _NEGATIONS]
        return after

    def _sound_alike(self, text: str) -> str:
        """Unknown words replaced by the template word they sound like; two unknown words
        in a row may be one ("re zoom": Whisper's "Re-zoom" for "resume")."""
        words = [word.strip(".,!?;:") for word in text.split()]
        out: list[str] = []
        index = 0
        while index < len(words):
            word = words[index]
            unknown = word.isalpha() and word not in self._sounds.words
            if unknown and index + 1 < len(words):
                after = words[index + 1]
                if after.isalpha() and after not in self._sounds.words:
                    joined = self._sounds.codes.get(jellyfish.metaphone(word + after))
                    if joined is not None:
                        out.append(joined)
                        index += 2
                        continue
            out.append(self._sounds.codes.get(jellyfish.metaphone(word), word) if unknown else word)
            index += 1
        return " ".join(out)

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
                slots = self._resolve(result, cleaned)
                if slots is None:
                    return None
                match = Match(result.intent.name, slots, cleaned)
                logger.debug("skills: %r -> %s %s", cleaned, match.intent, match.slots)
                return match
        return None

    def _resolve(self, result: RecognizeResult, text: str) -> dict[str, Any] | None:
        """Canonical slots; None for a template marked `only_valid` whose value did not parse."""
        raw = {name: entity.value for name, entity in result.entities.items() if name != "area"}
        slots: dict[str, Any] = {}
        try:
            _resolve_into(slots, raw, text, self.max_timer_s)
        except BadValue as exc:
            if raw.get("only_valid"):
                return None
            return {"invalid": getattr(exc, "slot", "value"), "problem": str(exc)}
        return slots


@dataclass(frozen=True)
class _Sounds:
    words: frozenset[str]
    codes: dict[str, str]  # metaphone code -> the one template word with that sound


def _sound_index(*dicts: dict[str, Any]) -> _Sounds:
    """Every literal word of the templates and their lists, and the words whose sound (metaphone) is unique.

    The words of the lists ("three", "minutes", "half") are known words, never replaced,
    but not replacements: a slot's value is the user's, not the template's.
    """
    texts: list[str] = []
    listed: list[str] = []
    for data in dicts:
        for intent in data["intents"].values():
            texts.extend(sentence for block in intent["data"] for sentence in block["sentences"])
        texts.extend(str(rule) for rule in data.get("expansion_rules", {}).values())
        for slot_list in data.get("lists", {}).values():
            for value in slot_list.get("values", []) if isinstance(slot_list, dict) else []:
                listed.append(str(value.get("in", "")) if isinstance(value, dict) else str(value))
    words = _words(texts)
    by_code: dict[str, set[str]] = {}
    for word in words:
        if len(word) >= 4:  # short words sound alike too easily
            by_code.setdefault(jellyfish.metaphone(word), set()).add(word)
    codes = {code: next(iter(found)) for code, found in by_code.items() if len(found) == 1}
    return _Sounds(frozenset(words | _words(listed) | _NUMBER_WORDS), codes)


# The number words of hassil's ranges ({timer_minutes}, {volume}), which no template spells out.
_NUMBER_WORDS = frozenset(
    re.findall(
        r"\w+",
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred",
    )
)


def _words(texts: Iterable[str]) -> set[str]:
    """The literal words of templates; "minute[s]" gives "minute" and "minutes"."""
    words: set[str] = set()
    for text in texts:
        lowered = re.sub(r"\{[^}]*\}|<[^>]*>", " ", text.lower())
        words.update(re.findall(r"[a-z']+", lowered))
        words.update(stem + "s" for stem in re.findall(r"([a-z']+)\[s\]", lowered))
    return words


def _like(word: str, head: str) -> bool:
    """Whether `word` may be Whisper's spelling of a wake phrase's first word ("they", "stay" for "hey")."""
    return len(word) >= 3 and SequenceMatcher(None, word, head).ratio() >= WAKE_LIKE


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


DAY_S = 24 * 3600


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
    if (later := re.match(r"in (.+)$", phrase.strip())) and not said_day and not day:  # "wake me up in an hour"
        try:
            seconds = parse_duration(later.group(1))
        except BadValue as exc:
            raise _bad("time", exc) from None
        if seconds > DAY_S:
            raise _bad("time", BadValue("An alarm can be at most a day ahead. Say a time like seven thirty."))
        slots["in_s"] = seconds
        return
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
