"""What of a transcript is the request: the wake word off its front, fillers alone are nothing.

The audio before the detection is kept (so a request said in one breath is
not clipped), and that audio holds the whole wake phrase on purpose: Whisper
writes "Hey Jarvis, what time is it?" well, but garbles a request that starts
with half a word ("vis what time" came out as "of this last time"). Whisper
spells names loosely ("Jervis", "Travis"), so words are compared by
similarity, and only among the first few.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

_WORD = re.compile(r"[\w']+")
SIMILAR = 0.6
LOOSE = 0.3
LOOK_AHEAD = 8  # words before the phrase that may be other speech caught in the pre-roll


def phrase_words(model_name: str) -> list[str]:
    """The words of a wake-word model's name: "hey_jarvis_v0.1" -> ["hey", "jarvis"]."""
    stem = re.sub(r"_v\d+(\.\d+)*$", "", model_name.lower())
    return [word for word in re.split(r"[_\-\s]+", stem) if word and not word.isdigit()]


def _similar(a: str, b: str, least: float = SIMILAR) -> bool:
    return SequenceMatcher(None, a, b).ratio() >= least


def _matches(found: list[re.Match[str]], expected: list[str]) -> bool:
    """Each word like the phrase's; after its exact first word ("hey") the name may be spelled far off,
    as long as it starts with the same letter.

    Whisper writes the name of a whole phrase loosely ("Hey, Jeremy,", "Hey Jardobus"), and a
    request rarely starts with "hey" and a name.
    """
    heard = [m.group().lower() for m in found]
    if len(expected) > 1 and heard[0] == expected[0]:
        rest = zip(heard[1:], expected[1:], strict=True)
        return all(h[:1] == w[:1] and _similar(h, w, LOOSE) for h, w in rest)
    return all(_similar(h, w) for h, w in zip(heard, expected, strict=True))


def _phrase_end(matches: list[re.Match[str]], words: list[str]) -> int:
    """Where a wake phrase (or its tail) ends among the first words, or 0 when it is not there."""
    for first in range(min(LOOK_AHEAD, len(matches))):
        # At the very start the tail may be all there is ("jarvis" of "hey jarvis"); after other
        # words only the whole phrase counts, so "who is Jarvis" keeps its name.
        for offset in range(len(words) if first == 0 else 1):
            expected = words[offset:]
            found = matches[first : first + len(expected)]
            if len(found) == len(expected) and _matches(found, expected):
                return found[-1].end()
    return 0


def strip_wake_phrase(text: str, phrases: list[list[str]]) -> str:
    """`text` from after a wake phrase found among its first words, without the punctuation after it."""
    matches = list(_WORD.finditer(text))
    end = max((_phrase_end(matches, words) for words in phrases), default=0)
    if end == 0:
        return text
    rest = text[end:].lstrip(" ,.!?;:-")
    return rest[:1].upper() + rest[1:] if rest else ""


FILLERS = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "ah", "oh", "hm", "hmm", "mm", "mmm", "huh"})


def only_fillers(text: str) -> bool:
    """Whether `text` holds no words but fillers ("Uh.", "MMMM", "hmm hmm"): no request in it."""
    words = [re.sub(r"(.)\1{2,}", r"\1\1", w) for w in _WORD.findall(text.lower())]  # "mmmm" -> "mm"
    return bool(words) and all(w in FILLERS for w in words)
