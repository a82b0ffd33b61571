"""Word error rate, on text normalised the same way on both sides."""

from __future__ import annotations

import re

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_CONTRACTIONS = {"what's": "what is", "it's": "it is", "i'm": "i am", "don't": "do not", "that's": "that is"}


def number_words(n: int) -> str:
    """0-999 in words; larger numbers stay digits."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    return str(n)


def _token(token: str) -> str:
    if token.isdigit():
        return number_words(int(token))
    return _CONTRACTIONS.get(token, token)


def normalise(text: str) -> list[str]:
    """Lower-case words: digits and clock times as words ("7:30" -> seven thirty), no punctuation."""
    text = text.lower().replace("%", " percent")
    text = re.sub(r"(\d+):(\d\d)", lambda m: f"{m[1]} {int(m[2]) or ''}", text)
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)
    words: list[str] = []
    for token in re.findall(r"[a-z0-9']+", text):
        words.extend(_token(token.strip("'")).split())
    return [w for w in words if w]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer(pairs: list[tuple[str, str]]) -> float:
    """Errors over reference words, across (reference, hypothesis) pairs."""
    errors = words = 0
    for reference, hypothesis in pairs:
        ref = normalise(reference)
        errors += edit_distance(ref, normalise(hypothesis))
        words += len(ref)
    return errors / max(words, 1)
