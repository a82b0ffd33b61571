"""Splitting streamed LLM text into chunks to speak while the reply is written.

The first chunk may end at a clause boundary (a comma, colon, semicolon or
dash) once it is long enough to sound natural, so the first sound comes early;
later chunks go by sentence, which keeps the voice's prosody intact.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "fig", "mt", "ft"]
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|\n+")
_CLAUSE_END = re.compile(r"[,;:]+(?=\s|$)|\s[-–—]+(?=\s)")
_MARKUP = re.compile(r"[*_`#>]+|\[(.*?)\]\(.*?\)")
_SPACES = re.compile(r"\s+")


def clean_for_speech(text: str) -> str:
    """Drop markdown marks and collapse whitespace; links keep their words."""
    text = _MARKUP.sub(lambda m: m.group(1) or "", text)
    return _SPACES.sub(" ", text).strip()


def _is_abbreviation(text: str, dot: int) -> bool:
    word = text[:dot].rsplit(None, 1)[-1] if text[:dot].strip() else ""
    word = word.lstrip("(\"'").lower()
    if len(word) == 1 and word.isalpha():
        return True  # an initial, as in "J. R. R. Tolkien"
    return word in _ABBREVIATIONS or word.rstrip(".") in _ABBREVIATIONS


def _final(text: str, match: re.Match[str]) -> bool:
    """Whether a clause mark is surely a boundary before the next token arrives.

    One followed by a space is; at the very end of what has streamed so far it
    is when it is one mark right after a word ("Paris,"), not after a digit
    ("1," may become "1,000").  Cutting there saves waiting a token for the
    space on the first chunk, the one the user waits for.  Sentence marks still
    wait for the space: "." may become "..." and "!" may become "!?".
    """
    if match.end() < len(text):
        return True
    return len(match.group()) == 1 and match.start() > 0 and text[match.start() - 1].isalpha()


class SentenceSplitter:
    """Feed it tokens; it hands back whole chunks ready to speak."""

    def __init__(self, first_min_chars: int = 24) -> None:
        self.first_min_chars = first_min_chars
        self._buffer = ""
        self._emitted = 0

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the chunks it completed, in order."""
        self._buffer += text
        chunks: list[str] = []
        while (cut := self._next_cut()) is not None:
            chunk, self._buffer = self._buffer[:cut], self._buffer[cut:]
            spoken = clean_for_speech(chunk)
            if spoken:
                chunks.append(spoken)
                self._emitted += 1
        return chunks

    def flush(self) -> list[str]:
        """The rest of the text once the stream has ended."""
        rest, self._buffer = clean_for_speech(self._buffer), ""
        if rest:
            self._emitted += 1
            return [rest]
        return []

    def _next_cut(self) -> int | None:
        text = self._buffer
        for match in _SENTENCE_END.finditer(text):
            if match.group().startswith(".") and _is_abbreviation(text, match.start()):
                continue
            if clean_for_speech(text[: match.end()]):
                return match.end()
        if self._emitted == 0 and self.first_min_chars > 0:
            for match in _CLAUSE_END.finditer(text):
                if not _final(text, match):
                    continue
                if len(clean_for_speech(text[: match.start()])) >= self.first_min_chars:
                    return match.end()
        return None
