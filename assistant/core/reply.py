"""The one reply path: LLM tokens -> clause/sentence chunks -> speech -> a sink.

The appliance's turn and a realtime response are two callers of `speak`;
each brings its own sink (the speaker, or a session's wire) and its own
events. Synthesis of the next chunk overlaps the playing of the last
through a small bounded queue. Cancelling the task that awaits `speak`
stops the LLM stream, the synthesis and the sink together.

A stream that fails mid-answer still has what had arrived spoken; the
error is raised once that has reached the sink, and the caller decides
what to do with it (the appliance apologises, a realtime response fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from assistant.core.errors import TextToSpeechFailed, TurnError
from assistant.core.ports import Audio, Message
from assistant.core.sentences import SentenceSplitter

logger = logging.getLogger(__name__)

QUEUE_CHUNKS = 4
"""Synthesised chunks waiting for the sink: enough to keep it fed, few enough to cancel fast."""


@dataclass(frozen=True)
class Segment:
    """A chunk of the reply and where its audio lies, in seconds on the sink's own timeline."""

    text: str
    start: float
    end: float
    cut: bool = False
    """Only its first words were heard (an interrupted chunk)."""


class Sink(Protocol):
    """Where the reply's audio goes: the speaker, or a realtime session's wire."""

    async def play(self, text: str, audio: Audio) -> Segment:
        """Hand over one chunk; return where it sounds."""
        ...


Synthesize = Callable[[str], Awaitable[Audio]]


def _nothing(*_: object) -> None:
    return None


@dataclass
class Hooks:
    """What a caller hears of the reply as it goes (its events); every hook is optional."""

    first_token: Callable[[], None] = _nothing
    chunk: Callable[[str], None] = _nothing
    """A chunk is about to be synthesised."""
    llm_done: Callable[[str], None] = _nothing
    """The LLM finished cleanly; the whole text it wrote."""
    tts_failed: Callable[[str, Exception], None] | None = None
    """A chunk the voice could not say; None: the failure ends the reply."""


@dataclass
class Reply:
    """What a reply made: the LLM's text, the chunks the sink took, and when (perf seconds)."""

    text: str = ""
    segments: list[Segment] = field(default_factory=list)
    requested_at: float = 0.0
    first_token_at: float | None = None
    first_chunk_at: float | None = None
    first_tts_s: float | None = None


async def speak(
    stream: AsyncGenerator[str, None],
    *,
    synthesize: Synthesize,
    sink: Sink,
    first_chunk_min_chars: int,
    hooks: Hooks | None = None,
    reply: Reply | None = None,
    perf: Callable[[], float] = time.perf_counter,
) -> Reply:
    """Speak `stream` into `sink` chunk by chunk; raise the stream's `TurnError` after what arrived.

    Pass `reply` to keep what was made even when the task is cancelled.
    """
    hooks = hooks or Hooks()
    reply = reply if reply is not None else Reply()
    reply.requested_at = perf()
    queue: asyncio.Queue[tuple[str, Audio] | None] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
    failure: list[TurnError] = []

    async def put(chunk: str) -> None:
        if reply.first_chunk_at is None:
            reply.first_chunk_at = perf()
        hooks.chunk(chunk)
        started = perf()
        try:
            audio = await synthesize(chunk)
        except Exception as exc:
            if hooks.tts_failed is None:
                raise TextToSpeechFailed(f"text-to-speech failed on {chunk!r}: {exc}") from exc
            hooks.tts_failed(chunk, exc)  # a voice that fails on one chunk skips that chunk
            return
        if reply.first_tts_s is None:
            reply.first_tts_s = perf() - started
        await queue.put((chunk, audio))

    async def produce() -> None:
        splitter = SentenceSplitter(first_chunk_min_chars)
        try:
            try:
                async with contextlib.aclosing(stream) as pieces:
                    async for piece in pieces:
                        if reply.first_token_at is None:
                            reply.first_token_at = perf()
                            hooks.first_token()
                        reply.text += piece
                        for chunk in splitter.push(piece):
                            await put(chunk)
                hooks.llm_done(reply.text)
            except TextToSpeechFailed:
                raise
            except TurnError as exc:
                failure.append(exc)
            for chunk in splitter.flush():  # the end of the reply, or what arrived before the stream broke
                await put(chunk)
        except TextToSpeechFailed as exc:  # the voice failed and the caller skips nothing: the reply ends
            failure.append(exc)
        await queue.put(None)

    async def consume() -> None:
        while (item := await queue.get()) is not None:
            reply.segments.append(await sink.play(*item))

    async with asyncio.TaskGroup() as group:
        group.create_task(produce(), name="reply-produce")
        group.create_task(consume(), name="reply-play")
    if failure:
        raise failure[0]
    return reply


async def say(
    text: str, *, synthesize: Synthesize, sink: Sink, hooks: Hooks | None = None, reply: Reply | None = None
) -> Reply:
    """Speak a fixed text (an apology, a local answer) through the same path, sentence by sentence."""

    async def once() -> AsyncGenerator[str, None]:
        yield text

    return await speak(
        once(), synthesize=synthesize, sink=sink, first_chunk_min_chars=len(text) + 1, hooks=hooks, reply=reply
    )


def heard(segments: Iterable[Segment], until: float | None) -> list[Segment]:
    """The segments the listener heard by `until` (None: all), the last cut to its share of words."""
    kept: list[Segment] = []
    for segment in segments:
        if until is None or segment.end <= until:
            kept.append(segment)
            continue
        if segment.start < until:
            words = segment.text.split()
            share = (until - segment.start) / max(segment.end - segment.start, 1e-9)
            count = int(len(words) * share)
            if count:
                kept.append(Segment(" ".join(words[:count]), segment.start, until, cut=True))
        break
    return kept


def heard_text(segments: Iterable[Segment], until: float | None = None, *, cut_mark: str = "") -> str:
    """What the listener heard, as one string; `cut_mark` ends an interrupted chunk ("…")."""
    return " ".join(s.text + (cut_mark if s.cut else "") for s in heard(segments, until))


def prompt(system: str, turns: Iterable[tuple[str, str]]) -> list[Message]:
    """The LLM's messages: the system prompt, then each (role, text) that has words."""
    out = [Message("system", system)] if system else []
    for role, text in turns:
        if text.strip():
            out.append(Message(role, text))  # type: ignore[arg-type]
    return out
